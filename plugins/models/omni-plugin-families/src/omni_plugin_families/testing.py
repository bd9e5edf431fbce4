"""Tiny tokenizers of this plugin's text families: the published special tokens and chat templates.

`published_tokenizer("gemma3-text")` is an `omni.testing` BPE tokenizer carrying the family's special tokens (in
the published order) and its published chat template (shipped in `chat_templates/`, sources in SOURCES.md), so
`apply_chat_template` renders and tokenizes as the real tokenizer does, with no hub. `build_tiny_gemma3(path)`
`build_tiny_idefics3(path)`, `build_tiny_internvl(path)`, `build_tiny_llava_onevision(path)`, `build_tiny_mllama(path)`
and `build_tiny_qwen3_vl(path)` write tiny
vision-language checkpoints with their processor files (no video processor: it needs torchvision).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omni.testing import FamilyTokens, build_tokenizer
from omni.testing.tokenizers import family_tokens as omni_family_tokens
from omni.testing.vision_language import build_tiny_vision_language

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


def published_chat_template(file_name: str) -> str:
    """The text of one of the shipped published chat templates (``gemma-3-it.jinja`` ...)."""
    return resources.files("omni_plugin_families").joinpath("chat_templates", file_name).read_text(encoding="utf-8")


_SENTENCEPIECE = ("<unk>", "<s>", "</s>")  # Llama-2-style first ids (Mistral, Phi-3)
_GEMMA_FIRST = ("<pad>", "<eos>", "<bos>", "<unk>")
_GEMMA_TURNS = ("<start_of_turn>", "<end_of_turn>")
_MISTRAL_CONTROL = (
    "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]",
)  # fmt: skip
_DEEPSEEK_BOS, _DEEPSEEK_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

_PHI_3_5 = (
    {"leading_special": _SENTENCEPIECE,
     "trailing_special": ("<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"),
     "bos": "<s>", "eos": "<|endoftext|>", "pad": "<|endoftext|>", "unk": "<unk>", "prepend_bos": False},
    "phi-3.5-mini-instruct.jinja",
)  # fmt: skip

_GLM = {
    "leading_special": (),
    "trailing_special": ("<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
                         "<|assistant|>", "<|observation|>"),
    "bos": None, "eos": "<|endoftext|>", "pad": "<|endoftext|>", "unk": None, "prepend_bos": False,
}  # fmt: skip

# family name -> (its tokenizer's tokens, shipped chat template file), as the published tokenizers have them.
_PUBLISHED: dict[str, tuple[dict[str, Any], str]] = {
    "gemma2": (
        {"leading_special": _GEMMA_FIRST, "trailing_special": _GEMMA_TURNS, "bos": "<bos>", "eos": "<eos>",
         "pad": "<pad>", "unk": "<unk>", "prepend_bos": True},
        "gemma-2-it.jinja",
    ),
    "gemma3-text": (
        {"leading_special": _GEMMA_FIRST, "trailing_special": _GEMMA_TURNS, "bos": "<bos>", "eos": "<eos>",
         "pad": "<pad>", "unk": "<unk>", "prepend_bos": True},
        "gemma-3-it.jinja",
    ),
    "mistral": (
        {"leading_special": _SENTENCEPIECE, "trailing_special": _MISTRAL_CONTROL, "bos": "<s>", "eos": "</s>",
         "pad": None, "unk": "<unk>", "prepend_bos": True},
        "mistral-nemo-instruct-2407.jinja",
    ),
    "mixtral": (
        {"leading_special": _SENTENCEPIECE, "trailing_special": (), "bos": "<s>", "eos": "</s>", "pad": None,
         "unk": "<unk>", "prepend_bos": True},
        "mixtral-8x7b-instruct-v0.1.jinja",
    ),
    "phi3": _PHI_3_5,
    "phimoe": _PHI_3_5,  # Phi-3.5-MoE ships Phi-3.5-mini's tokenizer and template
    "glm4-moe": ({**_GLM, "plain_added": ("<think>", "</think>")}, "glm-4.6.jinja"),
    "glm4": (_GLM, "glm-4-0414.jinja"),
    "glm": (_GLM, "glm-4-9b-chat-hf.jinja"),
    "deepseek-r1-distill": (
        {"leading_special": (),
         "trailing_special": (_DEEPSEEK_BOS, _DEEPSEEK_EOS, "<｜User｜>", "<｜Assistant｜>", "<|EOT|>"),
         "plain_added": ("<think>", "</think>"),
         "bos": _DEEPSEEK_BOS, "eos": _DEEPSEEK_EOS, "pad": _DEEPSEEK_EOS, "unk": None, "prepend_bos": True},
        "deepseek-r1-distill-qwen.jinja",
    ),
    "deepseek-v2": (
        {"leading_special": (), "trailing_special": (_DEEPSEEK_BOS, _DEEPSEEK_EOS),
         "bos": _DEEPSEEK_BOS, "eos": _DEEPSEEK_EOS, "pad": _DEEPSEEK_EOS, "unk": None, "prepend_bos": True},
        "deepseek-v2-lite-chat.jinja",
    ),
    "deepseek-v3": (
        {"leading_special": (),
         "trailing_special": (_DEEPSEEK_BOS, _DEEPSEEK_EOS, "<｜User｜>", "<｜Assistant｜>"),
         "plain_added": ("<think>", "</think>"),
         "bos": _DEEPSEEK_BOS, "eos": _DEEPSEEK_EOS, "pad": _DEEPSEEK_EOS, "unk": None, "prepend_bos": True},
        "deepseek-v3.1.jinja",
    ),
}  # fmt: skip

# Each family's end-of-turn token: what trains after every answer.
END_OF_TURN = {
    "gemma2": "<end_of_turn>",
    "gemma3-text": "<end_of_turn>",
    "mistral": "</s>",
    "mixtral": "</s>",
    "phi3": "<|end|>",
    "phimoe": "<|end|>",
    "deepseek-r1-distill": _DEEPSEEK_EOS,
    "deepseek-v2": _DEEPSEEK_EOS,
    "deepseek-v3": _DEEPSEEK_EOS,
    # The published GLM templates write none; the glm4 and glm4-moe templates train the next <|user|>.
    "glm4-moe": "<|user|>",
    "glm4": "<|user|>",
    "glm": "<|user|>",
}

FAMILIES_WITH_PUBLISHED_TEMPLATES: tuple[str, ...] = tuple(_PUBLISHED)


def family_tokens(family: str) -> FamilyTokens:
    """The `FamilyTokens` of one of `FAMILIES_WITH_PUBLISHED_TEMPLATES`."""
    tokens, template_file = _PUBLISHED[family]
    fields = {"plain_added": (), **tokens}
    return FamilyTokens(chat_template=published_chat_template(template_file), **fields)


def published_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A tiny tokenizer of `family` with its published special tokens and chat template."""
    return build_tokenizer(family_tokens(family))


# Gemma 3's image tokens, as its published tokenizer names them (its processor reads tokenizer.boi_token ...).
_GEMMA3_IMAGE_TOKENS = (("boi_token", "<start_of_image>"), ("eoi_token", "<end_of_image>"),
                        ("image_token", "<image_soft_token>"))  # fmt: skip


def build_tiny_gemma3(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Gemma 3 vision-language checkpoint (`Gemma3ForConditionalGeneration`: SigLIP tower of
    28-pixel images in 14-pixel patches, the projector pooling them into 4 image tokens, Gemma 3 text) with the
    published tokenizer layout and chat template, and `Gemma3Processor` files (`image_seq_length` 4). Returns `path`."""
    import transformers

    tokens = family_tokens("gemma3-text")
    tokens = dataclasses.replace(
        tokens,
        trailing_special=tokens.trailing_special + tuple(token for _, token in _GEMMA3_IMAGE_TOKENS),
        named_special=_GEMMA3_IMAGE_TOKENS,
    )
    config = transformers.Gemma3Config(
        vision_config=transformers.SiglipVisionConfig(image_size=28, patch_size=14), mm_tokens_per_image=4
    )
    images = transformers.Gemma3ImageProcessorPil(size={"height": 28, "width": 28})
    return build_tiny_vision_language(
        config, path, tokenizer=tokens, image_processor=images, architecture="Gemma3ForConditionalGeneration",
        seed=seed, image_seq_length=4,
    )  # fmt: skip


# Idefics3's published tokenizer: Llama 3's, with the image and turn tokens its processor adds.
_IDEFICS3_TOKENS = FamilyTokens(
    leading_special=(),
    trailing_special=("<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<fake_token_around_image>",
                      "<image>", "<end_of_utterance>", "<global-img>"),
    plain_added=(),
    bos="<|begin_of_text|>",
    eos="<|end_of_text|>",
    pad="<|finetune_right_pad_id|>",
    unk=None,
    chat_template=published_chat_template("idefics3-8b-llama3.jinja"),
    prepend_bos=True,
    named_special=(("image_token", "<image>"),),
)  # fmt: skip


def build_tiny_idefics3(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Idefics3 checkpoint (`Idefics3ForConditionalGeneration`: SigLIP tower of 28-pixel images
    in 14-pixel patches, pixel-shuffle connector into 1 image token, Llama) with the published chat template and
    `Idefics3Processor` files (no image splitting). Returns `path`."""
    import transformers

    config = transformers.Idefics3Config(
        vision_config=transformers.Idefics3VisionConfig(image_size=28, patch_size=14), scale_factor=2
    )
    images = transformers.Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 28}, max_image_size={"longest_edge": 28}
    )
    return build_tiny_vision_language(
        config, path, tokenizer=_IDEFICS3_TOKENS, image_processor=images,
        architecture="Idefics3ForConditionalGeneration", seed=seed, image_seq_len=1,
    )  # fmt: skip


def _qwen_vision_tokens(template_file: str, *named: tuple[str, str]) -> FamilyTokens:
    """Qwen's published tokenizer layout with the vision-language checkpoint's chat template and named tokens."""
    qwen = omni_family_tokens("qwen2.5")
    extra = tuple(dict.fromkeys(token for _, token in named if token not in qwen.trailing_special))
    return dataclasses.replace(
        qwen,
        trailing_special=qwen.trailing_special + extra,
        chat_template=published_chat_template(template_file),
        named_special=named,
    )


def build_tiny_llava_onevision(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random LLaVA-OneVision checkpoint (`LlavaOnevisionForConditionalGeneration`: SigLIP tower of
    28-pixel images in 14-pixel patches, one any-resolution tile, Qwen2) with the llava-hf chat template and
    `LlavaOnevisionProcessor` files: each image is 4 patch tokens plus the newline token. Returns `path`."""
    import transformers

    config = transformers.LlavaOnevisionConfig(
        vision_config=transformers.SiglipVisionConfig(image_size=28, patch_size=14),
        text_config=transformers.Qwen2Config(),
        image_grid_pinpoints=[[28, 28]],
        vision_feature_select_strategy="full",
    )
    images = transformers.LlavaOnevisionImageProcessorPil(
        size={"height": 28, "width": 28}, image_grid_pinpoints=[[28, 28]]
    )
    tokens = _qwen_vision_tokens("llava-onevision-qwen2.jinja", ("image_token", "<image>"), ("video_token", "<video>"))
    return build_tiny_vision_language(
        config, path, tokenizer=tokens, image_processor=images, architecture="LlavaOnevisionForConditionalGeneration",
        seed=seed, num_image_tokens=4, vision_feature_select_strategy="full",
    )  # fmt: skip


def build_tiny_qwen3_vl(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (`Qwen3VLForConditionalGeneration`: 16-pixel patches merged 2 x 2,
    DeepStack mergers, Qwen3 text with 3-D rotary positions) with the published chat template and `Qwen3VLProcessor`
    files (images of 32 x 32 to 64 x 64 pixels: 1 to 4 image tokens; one DeepStack tap). Returns `path`."""
    import transformers

    images = transformers.Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64}
    )
    # DeepStack taps the tower's layers 8, 16 and 24 by default; the tiny tower has 2, so tap its first (a config
    # without taps gives no DeepStack features, which transformers' generation does not expect).
    config = transformers.Qwen3VLConfig(vision_config={"deepstack_visual_indexes": [0]})
    return build_tiny_vision_language(
        config, path, tokenizer=_qwen_vision_tokens("qwen3-vl-instruct.jinja"),
        image_processor=images, architecture="Qwen3VLForConditionalGeneration", seed=seed,
    )  # fmt: skip


# The names the -hf tokenizers give InternVL's image tokens; "image_token" too, so build_tiny gives the config's
# image_token_id <IMG_CONTEXT>'s id, as the -hf configs have it.
_INTERNVL_IMAGE_TOKENS = (("start_image_token", "<img>"), ("end_image_token", "</img>"),
                          ("context_image_token", "<IMG_CONTEXT>"), ("video_token", "<video>"),
                          ("image_token", "<IMG_CONTEXT>"))  # fmt: skip


def build_tiny_internvl(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random InternVL checkpoint in transformers' layout (`InternVLForConditionalGeneration`: InternViT
    of 28-pixel tiles in 14-pixel patches, pixel shuffle into 1 token per tile, Qwen2) with the -hf checkpoints' chat
    template, Qwen2.5-VL's tokenizer layout with InternVL's image tokens and `InternVLProcessor` files. Returns
    `path`."""
    import transformers

    config = transformers.InternVLConfig(
        vision_config=transformers.InternVLVisionConfig(image_size=28, patch_size=14),
        text_config=transformers.Qwen2Config(),
    )
    images = transformers.GotOcr2ImageProcessorPil(size={"height": 28, "width": 28})
    return build_tiny_vision_language(
        config, path, tokenizer=_qwen_vision_tokens("internvl-hf.jinja", *_INTERNVL_IMAGE_TOKENS), image_processor=images,
        architecture="InternVLForConditionalGeneration", seed=seed, image_seq_length=1,
    )  # fmt: skip


def build_tiny_mllama(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Llama 3.2 Vision checkpoint (`MllamaForConditionalGeneration`: a tiled vision encoder of
    28-pixel tiles in 14-pixel patches, up to 2 tiles an image, its projector, a Llama whose second layer
    cross-attends to the image features) with the published tokenizer layout (Llama 3's, then ``<|image|>``), the
    published chat template and `MllamaProcessor` files. Each image is one ``<|image|>`` token. Returns `path`."""
    import transformers

    llama = omni_family_tokens("llama")
    tokens = dataclasses.replace(
        llama,
        trailing_special=(*llama.trailing_special, "<|image|>"),
        chat_template=published_chat_template("llama-3.2-vision-instruct.jinja"),
        named_special=(("image_token", "<|image|>"),),
    )
    vision = transformers.MllamaVisionConfig(
        image_size=28, patch_size=14, max_num_tiles=2, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]],
        num_global_layers=1, intermediate_layers_indices=[0],
        vision_output_dim=2 * 64,  # build_tiny's 64-wide last hidden state and one intermediate layer's, concatenated
    )  # fmt: skip
    config = transformers.MllamaConfig(
        vision_config=vision, text_config=transformers.MllamaTextConfig(cross_attention_layers=[1])
    )
    # Tiles of 28 pixels (the published 560), with the published CLIP normalisation.
    images = transformers.MllamaImageProcessorPil(
        size={"height": 28, "width": 28}, max_image_tiles=2,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    )  # fmt: skip
    out = build_tiny_vision_language(
        config, path, tokenizer=tokens, image_processor=images, architecture="MllamaForConditionalGeneration", seed=seed
    )
    _open_cross_attention_gates(out)
    return out


def _open_cross_attention_gates(path: Path) -> None:
    """Mllama initialises its cross-attention gates at 0 (tanh(0): the text layers ignore the images until the gates
    train). Published checkpoints have them trained open; a tiny one gets tanh(1) on each, so the images count from
    the first step, as in a real model."""
    import torch
    from safetensors.torch import load_file, save_file

    weights_file = path / "model.safetensors"
    weights = load_file(weights_file)
    for name, value in weights.items():
        if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
            weights[name] = torch.ones_like(value)
    save_file(weights, weights_file, metadata={"format": "pt"})
