"""Built-in optimizers (being written)."""
