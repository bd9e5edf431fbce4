"""`build_tiny`: a tiny random checkpoint of any transformers model type, loadable by path like a real one.

The config is the family's own (transformers' defaults for a model type, or a config you pass) with every
size shrunk by attribute name, in the config and in each nested text, vision or audio sub-config alike:
hidden widths to 64, feed-forward widths to 128, 2 layers, 2 attention heads of 32 (1 key/value head), a
handful of experts, and a vocabulary the size of a tiny BPE tokenizer (`omni.testing.tokenizers`) that
carries the family's special tokens and chat template where omni knows them. Token ids the config names
(image, audio or decoder-start tokens ...) are given tokens of that tokenizer, so the model, its config and
its tokenizer agree.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn
    from transformers import PretrainedConfig, PreTrainedTokenizerFast

    from omni.testing.tokenizers import FamilyTokens

WIDTH = 64  # hidden size of every tower; vision mergers project into the text model, so they must agree
HEAD_DIM = 32  # vLLM's CPU backend needs at least 32
_SIZES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (WIDTH, ("hidden_size", "d_model", "n_embd", "embed_dim", "hidden_dim", "out_hidden_size", "output_dim")),
    (2 * WIDTH, (
        "intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner", "vision_intermediate_size",
    )),
    (2, (
        "num_hidden_layers", "num_layers", "n_layer", "depth", "encoder_layers", "decoder_layers",
        "num_attention_heads", "num_heads", "n_head", "encoder_attention_heads", "decoder_attention_heads",
        "num_experts_per_tok",
    )),
    (1, ("num_key_value_heads", "first_k_dense_replace")),
    (HEAD_DIM, ("head_dim",)),
    (4, ("num_experts", "num_local_experts", "n_routed_experts")),
    (WIDTH // 2, ("moe_intermediate_size", "shared_expert_intermediate_size")),
    (2048, ("max_position_embeddings",)),
)  # fmt: skip
_SIZE_OF = {name: size for size, names in _SIZES for name in names}
# omni's tiny tokenizer families by model type; other model types get the generic family.
_TOKENIZER_FAMILIES = {
    "llama": "llama",
    "qwen2": "qwen2.5",
    "qwen2_moe": "qwen2.5",
    "qwen2_vl": "qwen2.5",
    "qwen2_5_vl": "qwen2.5",
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3",
}


def build_tiny(
    config_or_model_type: PretrainedConfig | str,
    path: str | Path,
    *,
    tokenizer: str | FamilyTokens | None = None,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Write a tiny random checkpoint (config.json, safetensors, generation config, tokenizer) into `path`.

    `config_or_model_type` is a transformers model type (``"mistral"``, ``"qwen2_vl"``, ``"whisper"`` ...) or
    a config, whose sizes are shrunk (a config passed in is copied, not changed). `tokenizer` names an
    `omni.testing.tokenizers` family or describes one (`FamilyTokens`; default: the model type's family, else
    ``"generic"``). `overrides` set
    top-level config fields last (``architectures=["AcmeForCausalLM"]``, ``num_hidden_layers=1``). The model
    class is the config's first architecture when transformers has it, else the first Auto class that takes the
    config (for encoder-decoder models speech or text seq2seq first; causal LM, image-text-to-text, then the bare
    model). Returns `path`.
    """
    import torch
    import transformers

    from omni.testing.tokenizers import build_tokenizer

    if isinstance(config_or_model_type, str):
        config = transformers.AutoConfig.for_model(config_or_model_type)
    else:
        config = copy.deepcopy(config_or_model_type)
    family = tokenizer or _TOKENIZER_FAMILIES.get(config.model_type, "generic")
    tok = build_tokenizer(family)  # type: ignore[arg-type]
    _name_config_tokens(config, tok)
    _shrink(config, vocab_size=len(tok))
    _set_special_ids(config, tok)
    for name, value in overrides.items():
        setattr(config, name, value)

    model_class = _model_class(config)
    # Auto classes build from a config with from_config, model classes with _from_config.
    build = getattr(model_class, "_from_config", None) or model_class.from_config
    model = random_model(lambda: build(config, dtype=torch.float32), seed=seed)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if "architectures" in overrides:  # save_pretrained writes the class's own name; a family plugin matches this
        written = json.loads((out / "config.json").read_text())
        (out / "config.json").write_text(json.dumps({**written, "architectures": overrides["architectures"]}, indent=2))
    return out


def random_model(construct: Callable[[], nn.Module], *, seed: int) -> nn.Module:
    """`construct()` with torch seeded by `seed`, every weight set: the same weights on every call.

    Some transformers classes leave weights their `_init_weights` misses as `torch.empty` (Qwen3-Omni's talker
    experts in 5.x): whatever the allocator held, different from one build to the next and sometimes NaN. Built
    here, such memory starts as NaN and each weight left so is drawn from normal(0, initializer_range).
    """
    import torch

    deterministic, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        model = construct()
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
    std = getattr(model.config, "initializer_range", None) or 0.02
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point() and tensor.isnan().any():
                tensor.normal_(0.0, std)
    return model


def _configs(config: Any) -> list[Any]:
    """`config` and every sub-config nested in it (text, vision, audio ... to any depth)."""
    found = [config]
    for name in getattr(config, "sub_configs", {}) or {}:
        sub = getattr(config, name, None)
        if sub is not None and hasattr(sub, "to_dict"):
            found += _configs(sub)
    return found


def _shrink(config: Any, *, vocab_size: int) -> None:
    mrope = _uses_mrope(config)
    for part in _configs(config):
        for name, size in _SIZE_OF.items():
            if isinstance(getattr(part, name, None), int) and not isinstance(getattr(part, name), bool):
                setattr(part, name, size)
        if isinstance(getattr(part, "vocab_size", None), int):
            part.vocab_size = vocab_size
        layers = getattr(part, "num_hidden_layers", None)
        if isinstance(getattr(part, "layer_types", None), list) and isinstance(layers, int):
            part.layer_types = part.layer_types[:layers]
        _shrink_rope_sections(part, mrope=mrope and hasattr(part, "vocab_size"))


def _uses_mrope(config: Any) -> bool:
    """Whether the config's modelling code splits rotary embeddings into multimodal sections (``mrope_section``)."""
    modelling = type(config).__module__.replace(".configuration_", ".modeling_")
    found = importlib.util.find_spec(modelling) if modelling.startswith("transformers.models.") else None
    return found is not None and found.origin is not None and "mrope_section" in Path(found.origin).read_text()


def _shrink_rope_sections(part: Any, *, mrope: bool) -> None:
    """Multimodal RoPE splits each head's rotary half into sections (time, height, width): rescale them.

    Models whose config leaves the sections out take a split of 128-wide heads in their modelling code
    (Qwen2-VL's [16, 24, 24]); their text config gets that split written down, rescaled."""
    for name in ("rope_scaling", "rope_parameters"):
        rope = getattr(part, name, None)
        if isinstance(rope, dict) and mrope and "mrope_section" not in rope:
            rope["mrope_section"] = [16, 24, 24]
        if isinstance(rope, dict) and isinstance(rope.get("mrope_section"), list):
            sections = rope["mrope_section"]
            scale = (HEAD_DIM // 2) / sum(sections)
            shrunk = [max(1, int(s * scale)) for s in sections]
            shrunk[0] += HEAD_DIM // 2 - sum(shrunk)
            rope["mrope_section"] = shrunk


def _name_config_tokens(config: Any, tokenizer: PreTrainedTokenizerFast) -> None:
    """Give every token id the config names (image, video, audio, decoder start ...) a token of `tokenizer`.

    A token the tokenizer family has under the config's name for it (``<|image_pad|>`` for Qwen's image
    token) keeps that token; others get a new special token ``<|NAME|>``."""
    special = {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"}
    for part in _configs(config):
        for name, value in list(vars(part).items()):
            if name in special or not (name.endswith("_token_id") or name.endswith("_token_index")):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            token = f"<|{name.removesuffix('_index').removesuffix('_id').removesuffix('_token')}|>"
            known = _family_token(tokenizer, name)
            if known is None:
                tokenizer.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
                known = tokenizer.convert_tokens_to_ids(token)
            setattr(part, name, known)


def _family_token(tokenizer: PreTrainedTokenizerFast, name: str) -> int | None:
    """The id of the family's own token for a config field: the token the tokenizer names for it (Gemma 3's
    ``image_token``), else one spelled as the families spell it (Qwen's ``<|image_pad|>`` for image_token_id)."""
    stem = name.removesuffix("_index").removesuffix("_id").removesuffix("_token")
    named = getattr(tokenizer, f"{stem}_token", None)
    for candidate in (*([named] if isinstance(named, str) else []), f"<|{stem}_pad|>", f"<|{stem}|>", f"<{stem}>"):
        token_id = tokenizer.convert_tokens_to_ids(candidate)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            return token_id
    return None


def _set_special_ids(config: Any, tokenizer: PreTrainedTokenizerFast) -> None:
    """The tokenizer's BOS, EOS and padding ids wherever a config names them; token-id lists that point past the
    vocabulary (Whisper's suppressed tokens) emptied."""
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    ids["pad_token_id"] = tokenizer.pad_token_id
    for part in _configs(config):
        for name, value in ids.items():
            if hasattr(part, name) or part is config:
                setattr(part, name, value)
        if getattr(part, "decoder_start_token_id", None) is not None:
            part.decoder_start_token_id = ids["bos_token_id"] or ids["eos_token_id"]
        for name in ("suppress_tokens", "begin_suppress_tokens", "forced_decoder_ids"):
            if getattr(part, name, None):
                setattr(part, name, None)


def _model_class(config: Any) -> Any:
    import transformers

    for architecture in getattr(config, "architectures", None) or ():
        if hasattr(transformers, architecture):
            return getattr(transformers, architecture)
    autos = ["AutoModelForCausalLM", "AutoModelForImageTextToText", "AutoModel"]
    if getattr(config, "is_encoder_decoder", False):  # Whisper also has a decoder-only causal LM class
        autos[:0] = ["AutoModelForSpeechSeq2Seq", "AutoModelForSeq2SeqLM"]
    for auto in autos:
        auto_class = getattr(transformers, auto)
        if type(config) in auto_class._model_mapping:
            return auto_class
    raise ValueError(f"no transformers model class takes a {config.model_type!r} config")
