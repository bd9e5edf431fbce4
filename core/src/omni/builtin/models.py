"""Built-in models plugin."""
