"""Chat templates: rows of the messages format to token ids and labels."""
