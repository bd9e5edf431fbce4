"""Load a Qwen3-Omni checkpoint: the thinker (what trains and answers in text) and, for inference with a
talker, a `speak` function that voices the answer.

A checkpoint is either the published whole model (`Qwen3OmniMoeForConditionalGeneration`: thinker, and
talker + code2wav when it speaks) or a thinker saved by full fine-tuning (`Qwen3OmniMoeThinkerForConditionalGeneration`).
Training always gets the thinker alone, so LoRA adapters and full fine-tunes are saved in thinker terms and
apply to either kind of checkpoint.
"""

from __future__ import annotations

from typing import Any

from omni.api import LoadOptions, ModelOptions, pretrained_kwargs

from omni_plugin_qwen3_omni.processor import Qwen3OmniProcessor
from omni_plugin_qwen3_omni.speech import Speaker


def load(path_or_id: str, *, model_options: ModelOptions, load_options: LoadOptions) -> tuple[Any, Any]:
    """(thinker, `Qwen3OmniProcessor`). Without training, a checkpoint with a talker keeps it (and code2wav) as
    `thinker.speak`, a `Speaker`."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(path_or_id)
    kwargs = pretrained_kwargs(model_options, load_options)
    if config.model_type == "qwen3_omni_moe_thinker":
        thinker = transformers.Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(path_or_id, **kwargs)
    else:
        whole = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(path_or_id, **kwargs)
        thinker = whole.thinker
        thinker.generation_config = whole.generation_config
        if whole.has_talker and not load_options.for_training:
            # Plain attributes, not submodules: the thinker's weights stay the thinker's alone. An export
            # (`omni export --merge-lora`) saves the whole model, so the merged checkpoint still speaks.
            thinker.speak = Speaker(whole)
            thinker.export_model = thinker.speak.whole_model
        # Training drops the talker and code2wav with `whole`: only the thinker is kept.
    if load_options.for_training:
        thinker.config.use_cache = False
        thinker.config.text_config.use_cache = False
    return thinker, Qwen3OmniProcessor.from_pretrained(path_or_id)
