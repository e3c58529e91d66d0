"""Built-in models (being written)."""
