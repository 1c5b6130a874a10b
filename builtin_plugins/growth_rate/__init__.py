"""Built-in plugin growth_rate (being written)."""
