"""The model flags shared by every command that loads a model (no heavy imports: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from omni.options import option

TorchDtype = Literal["auto", "float32", "bfloat16", "float16"]
AttnImpl = Literal["sdpa", "eager", "flash_attention_2", "flash_attention_3"]
# What the model outputs: next-token logits, or one score per sequence (a reward model's head).
ModelHead = Literal["causal_lm", "sequence_classification"]


@dataclass
class ModelSourceOptions:
    """Which model: a name, folder or hub id, its family, and the hub its id comes from."""

    model: str | None = option(
        None,
        help="model name, local checkpoint folder or hub id (default: the embedded smollm2-135m-instruct)",
        aliases=("model_id_or_path",),
    )
    model_type: str | None = option(
        None, help="model family to use instead of the one detected from config.json (see `omni list models`)"
    )
    use_hf: bool = option(
        True,
        help="where hub ids come from: true, the Hugging Face hub (its local cache first, as transformers does); "
        "false, ModelScope through the modelscope package (its local cache first), as ms-swift's default",
    )


@dataclass
class ModelOptions(ModelSourceOptions):
    """Which model to load and how; commands that load a model inherit these fields as flags."""

    torch_dtype: TorchDtype = option(
        "auto", help="weight dtype; auto is the checkpoint's dtype on GPU and float32 on CPU"
    )
    attn_impl: AttnImpl = option(
        "sdpa",
        help="attention implementation; flash_attention_2/3 need a CUDA GPU and the flash-attn package (fall back "
        "to sdpa without a GPU); padding-free rows go to them as variable-length sequences",
        aliases=("attn_implementation",),
    )
    device_map: str | None = option(
        None, help="where to place the weights (cpu, cuda, auto ...); default: the first GPU if there is one"
    )


@dataclass(frozen=True)
class LoadOptions:
    """What the calling command decided about loading, beyond the user's model flags.

    `quantization_config` comes from a quantizer plugin (e.g. 4-bit for QLoRA); `device_map` is the
    resolved placement (None: leave the weights on the CPU); `for_training` asks for a trainable model;
    `head` is the output the model is loaded with: ``causal_lm`` (next-token logits) or ``sequence_classification``
    (transformers' ``AutoModelForSequenceClassification`` with one label: a score per sequence, as a reward model).
    """

    quantization_config: Any = None
    device_map: Any = None
    for_training: bool = False
    head: ModelHead = "causal_lm"
