"""Built-in plugin calibrations (being written)."""
