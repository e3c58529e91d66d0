"""Built-in heads (being written)."""
