"""Built-in plugin exports (being written)."""
