"""Load a Qwen2-Audio checkpoint with transformers: the model and its `Qwen2AudioProcessor`."""

from __future__ import annotations

from typing import Any

from omni.api import LoadOptions, ModelOptions, pretrained_kwargs


def load(path_or_id: str, *, model_options: ModelOptions, load_options: LoadOptions) -> tuple[Any, Any]:
    """(Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor): tokenizer plus Whisper feature extractor."""
    import transformers

    kwargs = pretrained_kwargs(model_options, load_options)
    model = transformers.Qwen2AudioForConditionalGeneration.from_pretrained(path_or_id, **kwargs)
    if load_options.for_training:
        model.config.use_cache = False
        model.config.text_config.use_cache = False
    return model, transformers.AutoProcessor.from_pretrained(path_or_id)
