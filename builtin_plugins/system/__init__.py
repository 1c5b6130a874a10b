"""Built-in plugin system (being written)."""
