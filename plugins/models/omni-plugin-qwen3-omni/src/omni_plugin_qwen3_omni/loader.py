"""Load a Qwen3-Omni checkpoint: the thinker (what trains and answers in text) and, for inference with a
talker, a `speak` function that voices the answer.

A checkpoint is either the published whole model (`Qwen3OmniMoeForConditionalGeneration`: thinker, and
talker + code2wav when it speaks) or a thinker saved by full fine-tuning (`Qwen3OmniMoeThinkerForConditionalGeneration`).
Training always gets the thinker alone, so LoRA adapters and full fine-tunes are saved in thinker terms and
apply to either kind of checkpoint.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from omni.api import LoadOptions, ModelOptions, pretrained_kwargs

from omni_plugin_qwen3_omni.processor import Qwen3OmniProcessor

# code2wav's output rate in the published model (24 kHz waveforms).
SPEECH_SAMPLING_RATE = 24000
# Most talker (codec) steps per allowed answer token: the talker speaks at 12.5 codec frames a second, and a
# text token takes well under a second to say, so speech is never cut short but a talker that does not stop
# (an untrained one) cannot run on for minutes.
CODEC_STEPS_PER_TOKEN = 16


def load(path_or_id: str, *, model_options: ModelOptions, load_options: LoadOptions) -> tuple[Any, Any]:
    """(thinker, `Qwen3OmniProcessor`). Without training, a checkpoint with a talker keeps it for `thinker.speak`."""
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
            # A plain function attribute, not a submodule: the thinker's weights stay the thinker's alone.
            thinker.speak = functools.partial(speak, whole)
        # Training drops the talker and code2wav with `whole`: only the thinker is kept.
    if load_options.for_training:
        thinker.config.use_cache = False
        thinker.config.text_config.use_cache = False
    return thinker, Qwen3OmniProcessor.from_pretrained(path_or_id)


def speak(
    whole: Any, inputs: dict[str, Any], *, max_new_tokens: int, speaker: str | None = None
) -> tuple[list[int], np.ndarray, int]:
    """Answer `inputs` (prompt ids, attention mask and media tensors) greedily, in text and speech.

    Returns (answer token ids, mono float32 waveform, its sampling rate). The thinker writes the text; the
    talker turns its hidden states into codec tokens and code2wav into the waveform.
    """
    config = whole.config
    voice = speaker or next(iter(config.talker_config.speaker_id))
    width = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        text_ids, waveform = whole.generate(
            **inputs,
            speaker=voice,
            return_audio=True,
            thinker_max_new_tokens=max_new_tokens,
            thinker_do_sample=False,
            thinker_eos_token_id=whole.generation_config.eos_token_id,
            talker_do_sample=False,
            talker_max_new_tokens=CODEC_STEPS_PER_TOKEN * max_new_tokens,
            # transformers collects codec frames from the talker's decode steps only: one that stops at its first
            # step (an untrained talker may) would leave none, so it takes at least one.
            talker_min_new_tokens=2,
        )
    wave = waveform.reshape(-1).float().cpu().numpy() if waveform is not None else np.zeros(0, np.float32)
    return text_ids[0, width:].tolist(), wave, SPEECH_SAMPLING_RATE
