"""Built-in plugin od_reading (being written)."""
