"""Built-in plugin leds (being written)."""
