"""A tiny random Qwen3-Omni saved as a real checkpoint folder, loadable by path like the published one.

`build_tiny_qwen3_omni(path)` writes what the hub's ``Qwen/Qwen3-Omni-30B-A3B-Instruct`` folder holds, at
a few hundred thousand parameters: config.json (`Qwen3OmniMoeConfig`: a thinker with a mixture-of-experts
text model, vision tower and audio tower; with ``with_talker=True`` also the talker and code2wav that
speak), model.safetensors, generation_config.json, the tiny ``qwen3-omni`` tokenizer
(`omni.testing.build_tokenizer`) with the processor's multimodal token names, preprocessor_config.json
(`Qwen2VLImageProcessor` with 16-pixel patches + `WhisperFeatureExtractor` with 128 mel bins) and
video_preprocessor_config.json. `transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(path)`
loads it; its ``thinker`` trains on text, images, audio and video.

`AutoProcessor.from_pretrained(path)` needs torchvision, as for the published checkpoint: transformers'
Qwen3-Omni processor requires a video processor and its only one is torchvision-based.
`AutoTokenizer`, `AutoImageProcessor` (the PIL backend) and `AutoFeatureExtractor` load without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The processor reads these tokenizer attributes; the published tokenizer_config.json names them.
MULTIMODAL_TOKENS: dict[str, str] = {
    "image_token": "<|image_pad|>",
    "audio_token": "<|audio_pad|>",
    "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
}
ARCHITECTURE = "Qwen3OmniMoeForConditionalGeneration"
_HIDDEN = 64  # thinker text width; the vision and audio towers project into it
_PATCH, _MERGE, _TEMPORAL = 16, 2, 2  # the published vision tower's patching
# Text rotary embedding split over (time, height, width), summing to head_dim / 2 as in the published model.
_ROPE = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [6, 5, 5], "interleaved": True}
# Talker codec: a small codebook, then 1024 control ids as in the published layout (generation suppresses
# the top 1024 ids of the talker vocabulary except end-of-speech).
_CODEBOOK, _CODE_GROUPS = 64, 4
# Image settings the video processor shares (frames are normalised and resized like images).
_SHARED_VISION_KEYS = (
    "do_convert_rgb", "do_normalize", "do_rescale", "do_resize", "image_mean", "image_std", "rescale_factor",
    "resample", "size",
)  # fmt: skip


def build_tiny_qwen3_omni(path: str | Path, *, with_talker: bool = False, seed: int = 0) -> Path:
    """Write a tiny random Qwen3-Omni checkpoint into `path` (created if missing) and return it.

    The thinker has ~0.4M parameters; `with_talker` adds the talker and code2wav (~0.3M more) so
    ``generate(..., return_audio=True)`` speaks. `seed` makes the weights reproducible.
    """
    import transformers
    from omni.testing import random_model

    tokenizer = _tokenizer()
    config = transformers.Qwen3OmniMoeConfig(
        architectures=[ARCHITECTURE],
        thinker_config=_thinker_config(tokenizer),
        talker_config=_talker_config(tokenizer) if with_talker else None,
        code2wav_config=_code2wav_config() if with_talker else None,
        enable_audio_output=with_talker,
        **_conversation_token_ids(tokenizer),
    )
    model = random_model(lambda: transformers.Qwen3OmniMoeForConditionalGeneration(config), seed=seed)
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _write_processor_configs(out)
    return out


def _tokenizer() -> Any:
    from omni.testing import build_tokenizer

    # Loading with the named tokens makes save_pretrained record them the way the published tokenizer does.
    return build_tokenizer("qwen3-omni", extra_special_tokens=MULTIMODAL_TOKENS)


def _token_ids(tokenizer: Any) -> dict[str, int]:
    """Multimodal token ids, under the names both thinker and talker configs use."""
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in MULTIMODAL_TOKENS.items()}
    return {
        "image_token_id": ids["image_token"],
        "audio_token_id": ids["audio_token"],
        "video_token_id": ids["video_token"],
        "vision_start_token_id": ids["vision_bos_token"],
        "audio_start_token_id": ids["audio_bos_token"],
    }


def _role_id(tokenizer: Any, role: str) -> int:
    # The model finds a turn's role by the one token after <|im_start|>; with the tiny BPE a role word may
    # be several tokens, and its first one is what follows <|im_start|>.
    return tokenizer.encode(role, add_special_tokens=False)[0]


def _conversation_token_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "im_start_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>"),
        "im_end_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "tts_pad_token_id": tokenizer.convert_tokens_to_ids("<tts_pad>"),
        "tts_bos_token_id": tokenizer.convert_tokens_to_ids("<tts_text_bos>"),
        "tts_eos_token_id": tokenizer.convert_tokens_to_ids("<tts_text_eod>"),
        "system_token_id": _role_id(tokenizer, "system"),
        "user_token_id": _role_id(tokenizer, "user"),
        "assistant_token_id": _role_id(tokenizer, "assistant"),
    }


# The text decoders of the thinker and the talker: the smallest MoE shape transformers accepts here.
_TINY_MOE_TEXT: dict[str, Any] = {
    "hidden_size": _HIDDEN,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
}


def _thinker_config(tokenizer: Any) -> dict[str, Any]:
    text = {
        **_TINY_MOE_TEXT,
        "vocab_size": len(tokenizer),
        "num_hidden_layers": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {**_ROPE, "mrope_interleaved": True},
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": _PATCH,
        "spatial_merge_size": _MERGE,
        "temporal_patch_size": _TEMPORAL,
        "out_hidden_size": _HIDDEN,
        "num_position_embeddings": 64,  # an 8 x 8 learned grid, interpolated to each image
        "deepstack_visual_indexes": [1],
    }
    audio = {
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "d_model": 32,
        "downsample_hidden_size": 16,
        "output_dim": _HIDDEN,
    }
    return {
        "text_config": text,
        "vision_config": vision,
        "audio_config": audio,
        "user_token_id": _role_id(tokenizer, "user"),
        "position_id_per_seconds": 13,
        **_token_ids(tokenizer),
    }


def _talker_config(tokenizer: Any) -> dict[str, Any]:
    codec = {  # control ids above the codebook, as in the published talker
        "codec_pad_id": _CODEBOOK + 4,
        "codec_bos_id": _CODEBOOK + 5,
        "codec_eos_token_id": _CODEBOOK + 6,
        "codec_nothink_id": _CODEBOOK + 11,
        "codec_think_bos_id": _CODEBOOK + 12,
        "codec_think_eos_id": _CODEBOOK + 13,
    }
    text = {
        **_TINY_MOE_TEXT,
        "vocab_size": _CODEBOOK + 1024,
        "num_hidden_layers": 1,
        "shared_expert_intermediate_size": 32,  # read by the model though not a declared config field
        "rope_parameters": _ROPE,
    }
    code_predictor = {
        "vocab_size": _CODEBOOK,
        "hidden_size": _HIDDEN,  # it continues the talker's hidden states, so the widths match
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "num_code_groups": _CODE_GROUPS,
    }
    return {
        "text_config": text,
        "code_predictor_config": code_predictor,
        "num_code_groups": _CODE_GROUPS,
        "thinker_hidden_size": _HIDDEN,
        "accept_hidden_layer": 1,
        "speaker_id": {"ethan": _CODEBOOK + 100, "chelsie": _CODEBOOK + 101, "aiden": _CODEBOOK + 102},
        "spatial_merge_size": _MERGE,
        "position_id_per_seconds": 13,
        **codec,
        **_token_ids(tokenizer),
    }


def _code2wav_config() -> dict[str, Any]:
    return {
        "codebook_size": _CODEBOOK,
        "num_quantizers": _CODE_GROUPS,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "decoder_dim": 32,
    }


def _write_processor_configs(out: Path) -> None:
    """preprocessor_config.json (image processor + feature extractor in one file, as published) and
    video_preprocessor_config.json, sized so test images stay a handful of tokens."""
    from transformers import Qwen2VLImageProcessorPil, WhisperFeatureExtractor

    image = Qwen2VLImageProcessorPil(
        patch_size=_PATCH,
        temporal_patch_size=_TEMPORAL,
        merge_size=_MERGE,
        size={"shortest_edge": 32 * 32, "longest_edge": 256 * 256},
    )
    audio = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000)
    preprocessor = {
        **audio.to_dict(),
        **image.to_dict(),
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen3OmniMoeProcessor",
    }
    video = {
        **{key: preprocessor[key] for key in _SHARED_VISION_KEYS},
        "patch_size": _PATCH,
        "temporal_patch_size": _TEMPORAL,
        "merge_size": _MERGE,
        "video_processor_type": "Qwen2VLVideoProcessor",
        "processor_class": "Qwen3OmniMoeProcessor",
    }
    for name, content in (("preprocessor_config.json", preprocessor), ("video_preprocessor_config.json", video)):
        (out / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
