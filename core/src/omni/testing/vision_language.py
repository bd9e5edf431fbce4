"""`build_tiny_qwen2_vl`: a tiny random Qwen2-VL or Qwen2.5-VL checkpoint with the processor files of the real one.

`build_tiny` writes the model and a tokenizer; a vision-language checkpoint also publishes its image
processor settings (preprocessor_config.json) and the processor's chat template, which writes an image
content part as ``<|vision_start|><|image_pad|><|vision_end|>``. The image processor is sized so a 64 x 64
test image is 4 image tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Qwen2-VL-*-Instruct's and Qwen2.5-VL-*-Instruct's published chat template (chat_template.json).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2_vl(path: str | Path, *, model_type: str = "qwen2_5_vl", seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny random `model_type` (``qwen2_vl`` or ``qwen2_5_vl``) checkpoint with its tokenizer, image
    processor settings and chat template into `path`; `AutoProcessor` (or omni's loader, without torchvision)
    reads them as it reads the published checkpoints. Returns `path`."""
    from transformers import Qwen2VLImageProcessorPil

    from omni.testing.tiny import build_tiny

    out = build_tiny(model_type, path, seed=seed, **overrides)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    vision = config["vision_config"]
    patch, merge = vision["patch_size"], vision["spatial_merge_size"]
    images = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=merge,
        temporal_patch_size=vision["temporal_patch_size"],
        size={"shortest_edge": (patch * merge) ** 2, "longest_edge": (2 * patch * merge) ** 2},
    )
    processor_class = "Qwen2_5_VLProcessor" if model_type == "qwen2_5_vl" else "Qwen2VLProcessor"
    settings = {**images.to_dict(), "image_processor_type": "Qwen2VLImageProcessor", "processor_class": processor_class}
    (out / "preprocessor_config.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    # The tokenizer and the processor share chat_template.jinja, as in the published checkpoints.
    (out / "chat_template.jinja").write_text(QWEN2_VL_CHAT_TEMPLATE, encoding="utf-8")
    return out
