"""The quantizer interface: a load-time quantization config (QLoRA, export), k-bit preparation for training,
and for `omni export` the steps after loading (quantize, save) and reloading an exported folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Quantizer:
    """Implemented by every spec registered through `register_quantizers`.

    `options` is an instance of the spec's options dataclass (or None). A method that quantizes while
    transformers loads the weights (bitsandbytes) implements `quantization_config`; one that quantizes a
    loaded model (optimum-quanto, GPTQ-style calibration) returns None there and implements `quantize`.
    """

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def quantization_config(self, bits: int, *, torch_dtype: str, keep_modules: tuple[str, ...] = ()) -> Any:
        """The transformers ``quantization_config`` that loads the base model with `bits`-bit weights.

        `torch_dtype` is the resolved compute dtype name (float32, bfloat16 ...). `keep_modules` are
        module-name prefixes to leave unquantized (a multimodal model's vision and audio towers); the output
        head stays unquantized too. Raises `OmniError` for a bit width this method does not support.
        """
        raise NotImplementedError

    def prepare_for_training(self, model: Any, *, gradient_checkpointing: bool) -> Any:
        """Make a quantized model trainable by a tuner (e.g. casts norms up, enables input gradients)."""
        return model

    def needs_calibration(self) -> bool:
        """Whether `quantize` runs calibration batches through the model (`omni export --dataset`)."""
        return False

    def quantize(
        self, model: Any, *, bits: int, keep_modules: tuple[str, ...], calibration: list[dict[str, Any]] | None
    ) -> Any:
        """Quantize a loaded model for export and return it; the default keeps what loading quantized.

        `calibration` holds model-input batches (``input_ids`` and the template's media tensors, batch of one)
        when `needs_calibration`, else None.
        """
        return model

    def save_quantized(self, model: Any, output_dir: Path) -> None:
        """Write the quantized weights and config into `output_dir` (the default: transformers' own format)."""
        model.save_pretrained(output_dir)

    def load_exported(self, path: str, *, model_options: Any, load_options: Any) -> tuple[Any, Any]:
        """Load a folder this method exported in a format of its own, as (model, processor).

        Only called for specs that name a `QuantizerSpec.exported_marker` file found in the folder.
        """
        raise NotImplementedError
