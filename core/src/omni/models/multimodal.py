"""The generic vision-language loader: any `AutoModelForImageTextToText` checkpoint and its processor.

transformers' `AutoProcessor` also loads the family's video processor, and those need torchvision, which
cannot be installed beside omni's CPU torch build. Where that fails the processor is built from its other
parts (tokenizer, the image processor's PIL backend, feature extractor) and its own saved settings and
chat template, with no video processor: images work, videos are refused by the template.
"""

from __future__ import annotations

import inspect
from typing import Any

from omni.errors import OmniError
from omni.models.loader import pretrained_kwargs
from omni.models.options import LoadOptions, ModelOptions
from omni.registry import ModelParts

# Module prefixes transformers' vision-language classes use for their parts (Qwen2-VL's visual/merger,
# LLaVA's and Gemma 3's vision_tower/multi_modal_projector, Idefics3's vision_model/connector/text_model).
VISION_LANGUAGE_PARTS = ModelParts(
    llm=("model.language_model", "model.text_model", "lm_head"),
    vision=("model.visual", "model.vision_tower", "model.vision_model"),
    aligner=("model.visual.merger", "model.multi_modal_projector", "model.connector"),
)


def load_image_text_to_text(
    path_or_id: str, *, model_options: ModelOptions, load_options: LoadOptions
) -> tuple[Any, Any]:
    """(the `AutoModelForImageTextToText` model, its processor) for `path_or_id`."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path_or_id, **pretrained_kwargs(model_options, load_options))
    if load_options.for_training:
        model.config.use_cache = False
        text_config = getattr(model.config, "text_config", None)
        if text_config is not None:
            text_config.use_cache = False
    return model, load_processor(path_or_id)


def load_processor(path_or_id: str) -> Any:
    """The checkpoint's `AutoProcessor`, or the same processor class without its video processor where
    loading that needs torchvision (or, in a folder omni saved that way, finds no video settings)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path_or_id)
    except (ImportError, OSError):
        pass
    try:
        return _processor_without_video(path_or_id)
    except ImportError as missing:  # the processor class itself needs torchvision (Mistral 3, Pixtral)
        raise OmniError(
            f"{path_or_id}: its processor cannot load here: {str(missing).strip().split('. ')[0]} (torchvision does not "
            "install beside omni's CPU torch build; use an environment with a matching torchvision)"
        ) from None


def _processor_without_video(path_or_id: str) -> Any:
    """The checkpoint's processor class, made with its tokenizer, PIL image processor and feature extractor."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    config = transformers.AutoConfig.from_pretrained(path_or_id)
    processor_class = PROCESSOR_MAPPING[type(config)]
    processor_dict, _ = processor_class.get_processor_dict(path_or_id)
    loaders = {
        "tokenizer": lambda: transformers.AutoTokenizer.from_pretrained(path_or_id),
        "image_processor": lambda: transformers.AutoImageProcessor.from_pretrained(path_or_id, backend="pil"),
        "feature_extractor": lambda: transformers.AutoFeatureExtractor.from_pretrained(path_or_id),
    }
    parts = {name: loaders[name]() for name in processor_class.get_attributes() if name in loaders}
    # The processor's own settings too (chat template, LLaVA-OneVision's num_image_tokens ...), not its parts'.
    accepted = inspect.signature(processor_class.__init__).parameters
    settings = {
        key: value
        for key, value in processor_dict.items()
        if key in accepted and key not in processor_class.get_attributes()
    }
    return processor_without_video(processor_class, **settings, **parts)


def processor_without_video(processor_class: type, **parts: Any) -> Any:
    """`processor_class` made from `parts` (tokenizer, image processor ...; ``chat_template`` and settings too) with
    no video processor: it is neither checked nor saved, so the class works where its video processor would
    need torchvision."""
    names = [name for name in processor_class.get_attributes() if name in parts]  # type: ignore[attr-defined]
    without_video = type(
        processor_class.__name__, (processor_class,), {"get_attributes": classmethod(lambda cls: names)}
    )
    return without_video(**parts)
