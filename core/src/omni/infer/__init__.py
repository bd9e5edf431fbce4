"""Inference: the engine interface and the built-in PyTorch engine."""
