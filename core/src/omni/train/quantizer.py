"""The quantizer interface as training uses it: a load-time quantization config, then k-bit preparation."""

from __future__ import annotations

from typing import Any


class Quantizer:
    """Implemented by every spec registered through `register_quantizers` that supports training (QLoRA).

    `options` is an instance of the spec's options dataclass (or None).
    """

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def quantization_config(self, bits: int, *, torch_dtype: str) -> Any:
        """The transformers ``quantization_config`` that loads the base model with `bits`-bit weights.

        `torch_dtype` is the resolved compute dtype name (float32, bfloat16 ...). Raises `OmniError`
        for a bit width this method does not support.
        """
        raise NotImplementedError

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        """Make a quantized model trainable by a tuner (e.g. casts norms up, enables input gradients)."""
        return model
