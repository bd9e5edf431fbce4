"""The Qwen2-Audio template: ChatML with a default system prompt, each ``<audio>`` expanded to its placeholders.

The published chat template writes an audio content part as ``Audio N: <|audio_bos|><|AUDIO|><|audio_eos|>``
and a newline (N counts the conversation's audios), and `Qwen2AudioProcessor` repeats ``<|AUDIO|>`` once
per feature the audio encoder makes of the clip. Each ``<audio>`` tag of a row becomes exactly that, so the
ids equal the processor's for the same conversation; the features (``input_features``,
``feature_attention_mask``) go in `Encoded.extras`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from omni.api import (
    MEDIA_TAG,
    Encoded,
    MediaContext,
    RowTooLongError,
    TemplateOptions,
    load_audio,
    media_tags,
    row_error,
    tagged_row,
    with_origin,
)
from omni_plugin_qwen3.templates import Qwen25Template


class Qwen2AudioTemplate(Qwen25Template):
    """Qwen2-Audio's chat format over a `Qwen2AudioProcessor` (a plain tokenizer works for text-only rows)."""

    default_system = "You are a helpful assistant."

    def __init__(self, processor: Any, options: TemplateOptions | None = None) -> None:
        super().__init__(processor, options)
        self.features = getattr(processor, "feature_extractor", None)
        self.audio_token = getattr(processor, "audio_token", "<|AUDIO|>")
        self.audio_bos = getattr(processor, "audio_bos_token", "<|audio_bos|>")
        self.audio_eos = getattr(processor, "audio_eos_token", "<|audio_eos|>")

    def encode(self, row: dict[str, Any]) -> Encoded:
        expanded, extras, tokens = self._expand(row)
        encoded = super().encode(expanded)
        self._check_placeholders(encoded.input_ids, tokens, row)
        return Encoded(encoded.input_ids, encoded.labels, extras)

    def encode_prompt(self, row: dict[str, Any]) -> Encoded:
        expanded, extras, tokens = self._expand(row)
        encoded = super().encode_prompt(expanded)
        self._check_placeholders(encoded.input_ids, tokens, row)
        return Encoded(encoded.input_ids, encoded.labels, extras)

    def _expand(self, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
        """The row with every ``<audio>`` replaced by its placeholder text, the features, and the placeholder count."""
        row = tagged_row(row)
        tags = media_tags(row)
        if not tags:
            return row, {}, 0
        if set(tags) != {"audio"}:
            raise row_error(row, "Qwen2-Audio takes audio only; remove the <image>/<video> tags and their files")
        listed = list(row.get("audios") or [])
        if len(tags) != len(listed):
            raise row_error(row, f"{len(tags)} <audio> tag(s) in the messages but {len(listed)} in audios")
        if self.features is None:
            raise row_error(row, "has <audio> tags, but the model was loaded without its audio feature extractor")
        context = MediaContext.of_row(row)
        rate = int(self.features.sampling_rate)
        waves = [load_audio(item, sampling_rate=rate, context=context) for item in listed]
        extras, counts = self._features(waves)
        numbers = iter(range(1, len(counts) + 1))
        pads = iter(counts)

        def placeholder(_: re.Match[str]) -> str:
            return f"Audio {next(numbers)}: {self.audio_bos}{self.audio_token * next(pads)}{self.audio_eos}\n"

        expanded = with_origin(dict(row), row)
        expanded["messages"] = [{**m, "content": MEDIA_TAG.sub(placeholder, m["content"])} for m in row["messages"]]
        return expanded, extras, sum(counts)

    def _features(self, waves: list[np.ndarray]) -> tuple[dict[str, Any], list[int]]:
        """Log-mel features padded to 30 s with their mask, and each clip's placeholder count, as
        `Qwen2AudioProcessor` computes them (the encoder halves the frames twice: a stride-2 convolution,
        then pooling)."""
        out = self.features(
            waves,
            sampling_rate=int(self.features.sampling_rate),
            padding="max_length",
            truncation=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        mask = out["attention_mask"]
        counts = [((int(frames) - 1) // 2 + 1 - 2) // 2 + 1 for frames in mask.sum(-1)]
        return {"input_features": out["input_features"], "feature_attention_mask": mask}, counts

    def _check_placeholders(self, input_ids: list[int], expected: int, row: dict[str, Any]) -> None:
        """Truncation (--max-length) must not cut into an audio: the model needs every placeholder."""
        if expected and input_ids.count(self.tokenizer.convert_tokens_to_ids(self.audio_token)) != expected:
            raise row_error(
                row,
                f"--max-length {self.options.max_length} would cut into its audio ({expected} placeholder "
                "tokens); raise --max-length",
                RowTooLongError,
            )
