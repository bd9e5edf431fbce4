"""Models: resolving a name, local checkpoint or hub id to a model spec, loading it, the embedded default.

Nothing here imports torch or transformers at module level; the loaders import them when called.
"""
