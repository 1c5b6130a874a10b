"""Built-in plugin experiment_profiles (being written)."""
