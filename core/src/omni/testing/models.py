"""Tiny random models saved as real checkpoint folders, loadable by path exactly like a downloaded model.

`build_tiny_model("qwen3", path)` writes config.json, model.safetensors, generation_config.json and the
family's tiny tokenizer (`omni.testing.tokenizers`) with its real chat template and special tokens.
The models have a few hundred thousand parameters: enough layers and heads for every code path
(head_dim 32, which vLLM's CPU backend needs), small enough to train in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

TinyFamily = Literal["llama", "qwen3"]

# Shared shape: 2 layers, hidden 64, 2 attention heads of 32 (grouped to 1 key/value head).
_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
}
# family -> (transformers config class, architecture, whether input and output embeddings are tied as published)
_FAMILIES: dict[str, tuple[str, str, bool]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", False),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", True),
}


def build_tiny_model(family: TinyFamily, path: str | Path, *, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny random `family` checkpoint into `path` (created if missing) and return it.

    `overrides` replace config fields (e.g. ``num_hidden_layers=1``, ``tie_word_embeddings=False``);
    `seed` makes the random weights reproducible.
    """
    import torch
    import transformers

    from omni.testing.tokenizers import build_tokenizer

    if family not in _FAMILIES:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(_FAMILIES)}")
    config_class, architecture, tied = _FAMILIES[family]
    tokenizer = build_tokenizer(family)
    special = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    fields = {**_SHAPE, **special, "tie_word_embeddings": tied, **overrides}
    config = getattr(transformers, config_class)(architectures=[architecture], **fields)

    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
