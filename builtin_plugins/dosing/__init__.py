"""Built-in plugin dosing (being written)."""
