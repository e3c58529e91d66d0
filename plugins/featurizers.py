"""Built-in featurizers (being written)."""
