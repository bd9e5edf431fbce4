"""Built-in training plugin."""
