"""A tiny random Qwen2-Audio saved as a real checkpoint folder, laid out like ``Qwen/Qwen2-Audio-7B-Instruct``.

`build_tiny_qwen2_audio(path)` writes config.json (`Qwen2AudioConfig`: a Whisper-style audio encoder, a
linear projector and a Qwen2 language model, ~0.3M parameters), model.safetensors under the published
weight names, generation_config.json, the tiny Qwen2.5 tokenizer (`omni.testing.build_tokenizer`) with the
audio tokens ``<|audio_bos|>``, ``<|AUDIO|>``, ``<|audio_eos|>`` and the published chat template, and
processor_config.json + preprocessor_config.json (`Qwen2AudioProcessor`: `WhisperFeatureExtractor` with
128 mel bins at 16 kHz). transformers and vLLM both load it, and neither needs torchvision for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARCHITECTURE = "Qwen2AudioForConditionalGeneration"
AUDIO_TOKENS = ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>")
# transformers' names for the parts -> the published checkpoint's (transformers 5.19 saves the language
# model under a doubled `language_model.model.model.` prefix that vLLM does not read; this writes the
# layout of the published checkpoint, which both load).
_PUBLISHED_NAMES = (
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
    ("model.audio_tower.", "audio_tower."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
)


def build_tiny_qwen2_audio(path: str | Path, *, seed: int = 0, **text_overrides: Any) -> Path:
    """Write a tiny random Qwen2-Audio checkpoint into `path` (created if missing) and return it.

    `text_overrides` replace fields of the language model's config (e.g. ``initializer_range=0.3`` for
    weights whose greedy answers vary with the input); `seed` makes the weights reproducible.
    """
    import transformers
    from omni.testing import random_model
    from safetensors.torch import save_file

    tokenizer = _tokenizer()
    features = transformers.WhisperFeatureExtractor(feature_size=128, sampling_rate=16000)
    processor = transformers.Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer)
    tokenizer.chat_template = processor.chat_template  # the published tokenizer carries the same template
    text = {
        "model_type": "qwen2",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,  # vLLM's CPU attention needs at least 32
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **text_overrides,
    }
    audio = {
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "d_model": 32,
        "max_source_positions": 1500,  # 30 s of mel frames after the stride-2 convolution, as published
    }
    config = transformers.Qwen2AudioConfig(
        architectures=[ARCHITECTURE],
        audio_config=audio,
        text_config=text,
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    model = random_model(lambda: transformers.Qwen2AudioForConditionalGeneration(config), seed=seed)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    transformers.GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(out)
    weights = {_published_name(name): tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    processor.save_pretrained(out)
    return out


def _published_name(name: str) -> str:
    for ours, published in _PUBLISHED_NAMES:
        if name.startswith(ours):
            return published + name[len(ours) :]
    raise ValueError(f"unexpected Qwen2-Audio weight {name!r}")


def _tokenizer() -> Any:
    from omni.testing import build_tokenizer

    tokenizer = build_tokenizer("qwen2.5")
    tokenizer.add_special_tokens({"additional_special_tokens": list(AUDIO_TOKENS)})
    return tokenizer
