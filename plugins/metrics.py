"""Built-in metrics (being written)."""
