"""Loading a resolved model: the generic transformers loader and the one entry point commands use."""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.models.options import LoadOptions, ModelHead, ModelOptions
from omni.models.resolve import ResolvedModel, resolve_model
from omni.registry import ModelSpec, Registration, Registry


@dataclass
class LoadedModel:
    """A model ready to use: the weights, the processor (tokenizer or multimodal processor) and where they came from."""

    model: Any
    processor: Any
    tokenizer: Any
    registration: Registration
    path: str

    @property
    def spec(self) -> ModelSpec:
        """The model spec whose loader loaded this model."""
        return self.registration.spec  # type: ignore[return-value]


def load_model(
    options: ModelOptions,
    registry: Registry,
    *,
    quantization_config: Any = None,
    for_training: bool = False,
    resolved: ResolvedModel | None = None,
    head: ModelHead = "causal_lm",
    with_adapters: bool = False,
) -> LoadedModel:
    """Resolve `options.model` (unless the caller already did: `resolved`), load it with its model spec's
    loader, and make sure it can pad.

    For inference the weights go to the first GPU when there is one (unless `--device-map` says
    otherwise); for training they stay where the loader put them and the trainer places them. `head`:
    ``sequence_classification`` loads one score per sequence (a reward model, `LoadOptions.head`); a model
    family whose loader cannot is an `OmniError`. `with_adapters`: a tuner will wrap the model (its adapters
    applied or merged), which a compressed-tensors checkpoint allows only decompressed, as training does.
    """
    resolved = resolved or resolve_model(options.model, registry, model_type=options.model_type, use_hf=options.use_hf)
    device_map = options.device_map if options.device_map is not None else _default_device_map(for_training)
    if quantization_config is None and (for_training or with_adapters):
        quantization_config = _decompressed(resolved.path_or_id)
    load_options = LoadOptions(
        quantization_config=quantization_config, device_map=device_map, for_training=for_training, head=head
    )
    loader = _exported_format_loader(resolved.path_or_id, registry) or resolved.spec.load()
    model, processor = loader(resolved.path_or_id, model_options=options, load_options=load_options)
    if head == "sequence_classification" and not is_sequence_classifier(model):
        raise OmniError(
            f"{resolved.path_or_id}: the {resolved.spec.name} model family's loader gives a "
            f"{type(model).__name__}, not a model that scores sequences (AutoModelForSequenceClassification)"
        )
    tokenizer = getattr(processor, "tokenizer", processor)
    _ensure_pad_token(model, tokenizer)
    if getattr(model, "name_or_path", None) == "":
        # A part of the checkpoint's model (Qwen3-Omni's thinker) names no checkpoint; adapters saved from it
        # record this one as their base (peft's base_model_name_or_path).
        model.name_or_path = resolved.path_or_id
    return LoadedModel(model, processor, tokenizer, resolved.registration, resolved.path_or_id)


def _decompressed(path_or_id: str) -> Any:
    """For a compressed-tensors checkpoint (omni's GPTQ, AWQ and W8A8 exports), whose packed layers have no weight a
    tuner can wrap, transformers' config that loads it decompressed (``run_compressed=False``); else None."""
    config = Path(path_or_id) / "config.json"
    quantization = json.loads(config.read_text()).get("quantization_config") if config.is_file() else None
    if not quantization or quantization.get("quant_method") != "compressed-tensors":
        return None
    from transformers import CompressedTensorsConfig

    print(
        f"omni: {path_or_id} holds compressed-tensors weights ({quantization.get('format')}): loading them "
        "decompressed, as adapters need",
        file=sys.stderr,
        flush=True,
    )
    return CompressedTensorsConfig(run_compressed=False)


def _exported_format_loader(path_or_id: str, registry: Registry) -> Any:
    """The `load_exported` of the quantizer whose own export format the folder holds, else None."""
    folder = Path(path_or_id)
    for registration in registry.all("quantizers"):
        marker = registration.spec.exported_marker
        if marker and (folder / marker).is_file():
            return registration.spec.load()(registration.spec.default_options()).load_exported
    return None


def is_sequence_classifier(model: Any) -> bool:
    """Whether `model` (or the model a tuner wraps) outputs one score per sequence rather than next-token logits."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForSequenceClassification")


def load_pretrained(path_or_id: str, *, model_options: ModelOptions, load_options: LoadOptions) -> tuple[Any, Any]:
    """Load a causal LM (or, for `LoadOptions.head` ``sequence_classification``, the same checkpoint with a
    one-score head) and its processor with transformers; the loader most model specs point at.

    Honours `--torch-dtype`, `--attn-impl`, the resolved device map and a quantizer's config. The
    processor is the model's multimodal processor when it has one, else its tokenizer.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoProcessor

    kwargs = pretrained_kwargs(model_options, load_options)
    if load_options.head == "sequence_classification":
        # A causal LM checkpoint gets a fresh one-score head; a classifier's own head is loaded as it is.
        config = AutoConfig.from_pretrained(path_or_id)
        if not any(a.endswith("ForSequenceClassification") for a in config.architectures or ()):
            kwargs["num_labels"] = 1
        model = AutoModelForSequenceClassification.from_pretrained(path_or_id, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path_or_id, **kwargs)
    if load_options.for_training:
        model.config.use_cache = False  # the KV cache only costs memory during training steps
    return model, AutoProcessor.from_pretrained(path_or_id)


def pretrained_kwargs(model_options: ModelOptions, load_options: LoadOptions) -> dict[str, Any]:
    """`from_pretrained` keyword arguments for the flags: dtype, attention, device map and quantization.

    For model-spec loaders that call a transformers class of their own rather than `load_pretrained`.
    """
    kwargs: dict[str, Any] = {
        "dtype": _torch_dtype(model_options.torch_dtype, load_options.device_map),
        "attn_implementation": _attn_implementation(model_options.attn_impl),
    }
    if load_options.device_map is not None:
        kwargs["device_map"] = load_options.device_map
    if load_options.quantization_config is not None:
        kwargs["quantization_config"] = load_options.quantization_config
    return kwargs


def _default_device_map(for_training: bool) -> str | None:
    import torch

    return "cuda" if torch.cuda.is_available() and not for_training else None


def _on_gpu(device_map: Any) -> bool:
    import torch

    return torch.cuda.is_available() and device_map != "cpu"


def _torch_dtype(name: str, device_map: Any) -> Any:
    """The dtype to load in: `auto` keeps the checkpoint's dtype on GPU but is float32 on CPU.

    CPUs run bfloat16/float16 matmuls slowly or not at all, so half-precision checkpoints are upcast there.
    """
    import torch

    if name == "auto":
        return "auto" if _on_gpu(device_map) else torch.float32
    return getattr(torch, name)


def _attn_implementation(name: str) -> str:
    import torch

    if name.startswith("flash_attention") and not torch.cuda.is_available():
        warnings.warn(f"--attn-impl {name} needs a CUDA GPU (and the flash-attn package); using sdpa", stacklevel=3)
        return "sdpa"
    return name


def _ensure_pad_token(model: Any, tokenizer: Any) -> None:
    """Give tokenizers without a pad token one (the end-of-sequence token), so batches can be padded."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if is_sequence_classifier(model) and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # it scores each row's last token before the padding
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
