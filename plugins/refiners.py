"""Built-in refiners (being written)."""
