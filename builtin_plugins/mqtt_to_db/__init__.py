"""Built-in plugin mqtt_to_db (being written)."""
