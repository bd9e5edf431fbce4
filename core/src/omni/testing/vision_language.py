"""Tiny random vision-language checkpoints with the processor files of the real ones: `build_tiny_qwen2_vl`
(Qwen2-VL, Qwen2.5-VL) and `build_tiny_llava`.

`build_tiny` writes the model and a tokenizer; a vision-language checkpoint also publishes its image
processor settings (preprocessor_config.json) and the processor's chat template, which writes an image
content part as the family does (Qwen2-VL: ``<|vision_start|><|image_pad|><|vision_end|>``). The image
processors are sized so a test image is 4 image tokens. `processor_reference(processor, row)` is what the
processor itself makes of a row, for parity tests. `build_tiny_vision_language(config, path, ...)` writes a tiny
checkpoint with processor files for any family whose tokenizer a `FamilyTokens` describes (transformers' own
processor class for the config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni.testing.tokenizers import FamilyTokens

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


def build_tiny_llava(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random LLaVA (`LlavaForConditionalGeneration`: a CLIP vision tower, a projector and a Llama)
    with a Llama 3 tokenizer, CLIP image processor settings (28 x 28 pixels: 4 patches, one image token each)
    and a LLaVA-1.5-style chat template (``USER:``/``ASSISTANT:`` turns, images first). Returns `path`."""
    import transformers

    from omni.testing.tiny import build_tiny

    vision = transformers.CLIPVisionConfig(image_size=28, patch_size=14)
    config = transformers.LlavaConfig(vision_config=vision, text_config=transformers.LlamaConfig())
    out = build_tiny(config, path, tokenizer="llama", seed=seed)
    written = json.loads((out / "config.json").read_text(encoding="utf-8"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    image_token = tokenizer.convert_ids_to_tokens(written["image_token_index"])
    images = transformers.CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    settings = {**images.to_dict(), "image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor"}
    (out / "preprocessor_config.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    processor = {
        "processor_class": "LlavaProcessor",
        "patch_size": vision.patch_size,
        "vision_feature_select_strategy": written["vision_feature_select_strategy"],
        "image_token": image_token,
        "num_additional_image_tokens": 1,  # CLIP's class token, which the "default" strategy drops again
    }
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2, sort_keys=True) + "\n")
    template = (
        "{{ bos_token }}{% for message in messages %}{{ message['role'].upper() + ':\n' }}"
        "{% for item in message['content'] | selectattr('type', 'equalto', 'image') %}" + image_token + "{% endfor %}"
        "{% for item in message['content'] | selectattr('type', 'equalto', 'text') %}{{ item['text'] }}{% endfor %}"
        "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'ASSISTANT:\n' }}{% endif %}"
    )
    (out / "chat_template.jinja").write_text(template, encoding="utf-8")
    return out


def processor_reference(processor: Any, row: dict[str, Any]) -> Any:
    """What transformers' own processor gives for a messages-format row with images: its chat template renders the
    conversation (each ``<image>`` tag an image part naming the row's file) and its call tokenizes it, as
    ``processor.apply_chat_template(..., tokenize=True, return_dict=True, return_tensors="pt")``. Parity tests
    compare omni's encoding of the row with this."""
    from omni.template.multimodal import content_parts

    images = iter(row.get("images") or [])
    conversation = [
        {
            "role": message["role"],
            "content": [
                {**part, "path": str(next(images))} if part["type"] == "image" else part
                for part in content_parts(message["content"])
            ],
        }
        for message in row["messages"]
    ]
    return processor.apply_chat_template(conversation, tokenize=True, return_dict=True, return_tensors="pt")


def build_tiny_vision_language(
    config: Any,
    path: str | Path,
    *,
    tokenizer: FamilyTokens,
    image_processor: Any,
    architecture: str,
    seed: int = 0,
    **processor_settings: Any,
) -> Path:
    """Write a tiny random checkpoint of any transformers vision-language family with its processor files.

    `config` is the family's config (sized by `build_tiny`, which shrinks it further), `tokenizer` describes the
    published tokenizer (its special tokens, the tokens it names such as ``image_token``, its chat template),
    `image_processor` is the family's image processor sized for the tiny tower, `architecture` the model class to
    build. The family's processor class (transformers' own for the config, without its video processor, which
    needs torchvision) is made from them and
    `processor_settings` (e.g. ``image_seq_length``) and saved beside the weights, as the published checkpoints
    ship theirs, so `AutoProcessor` (or omni's loader) reads it back. Returns `path`."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from omni.models.multimodal import processor_without_video
    from omni.testing.tiny import build_tiny

    out = build_tiny(config, path, tokenizer=tokenizer, seed=seed, architectures=[architecture])
    saved_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    processor = processor_without_video(
        PROCESSOR_MAPPING[type(config)],
        image_processor=image_processor,
        tokenizer=saved_tokenizer,
        chat_template=tokenizer.chat_template,
        **processor_settings,
    )
    processor.save_pretrained(out)
    return out


def padded_and_padding_free_losses(model: Any, features: list[dict[str, Any]], pad_token_id: int) -> tuple[Any, Any]:
    """The summed token loss of `features` (encoded rows) batched with padding and batched padding-free (one
    concatenated row, with the model's multimodal rotary positions per row where it has them), for tests that the
    two train alike."""
    import torch

    from omni.train.collators import PaddingCollator, PaddingFreeCollator, multimodal_rope_index

    def summed_token_loss(batch: dict[str, Any]) -> Any:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "loss_positions", "num_tokens")}
        # As the trainer calls it: with a cache, transformers would not find the packed sequences' boundaries.
        logits = model(**inputs, use_cache=False).logits[..., :-1, :]
        targets = batch["labels"][..., 1:]
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")

    with torch.no_grad():
        padded = summed_token_loss(PaddingCollator(pad_token_id=pad_token_id)(features))
        flat = summed_token_loss(PaddingFreeCollator(rope_index=multimodal_rope_index(model))(features))
    return padded, flat
