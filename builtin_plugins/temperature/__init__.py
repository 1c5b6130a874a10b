"""Built-in plugin temperature (being written)."""
