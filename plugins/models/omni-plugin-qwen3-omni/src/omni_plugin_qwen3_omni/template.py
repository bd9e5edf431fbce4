"""The Qwen3-Omni template: Qwen3's chat format with images, audio and video expanded into placeholders.

Each ``<image>``, ``<audio>``, ``<video>`` tag of a row becomes the model's start token, as many pad tokens
as the processor makes features for that item, and the end token — exactly what transformers'
`Qwen3OmniMoeProcessor` writes. The media tensors and the multimodal rotary positions (the thinker's own
`get_rope_index`) go in `Encoded.extras`, so collators can batch and pack rows of any modality mix.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import torch
from omni.api import (
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    MEDIA_TAG,
    ChatMLTemplate,
    Encoded,
    MediaContext,
    RowTooLongError,
    TemplateOptions,
    load_audio,
    load_image,
    load_video,
    media_tags,
    row_error,
    tagged_row,
    with_origin,
)
from omni_plugin_qwen3.templates import EMPTY_THINK, Qwen3Template

from omni_plugin_qwen3_omni.processor import MediaTensors, Qwen3OmniProcessor

_COLUMNS = {"image": "images", "audio": "audios", "video": "videos"}


class Qwen3OmniTemplate(Qwen3Template):
    """Qwen3-Omni's chat format over a `Qwen3OmniProcessor` (a plain tokenizer works for text-only rows).

    `encode` extras: the media tensors (``pixel_values``/``image_grid_thw``, ``input_features``/
    ``feature_attention_mask``, ``pixel_values_videos``/``video_grid_thw``/``video_second_per_grid``) and
    ``position_ids`` of shape (4, length): text positions, then the temporal, height and width rotary
    positions. `encode_prompt` extras hold the media only (generation computes positions itself).
    """

    def __init__(self, processor: Any, options: TemplateOptions | None = None) -> None:
        super().__init__(processor, options)
        self.media = processor if isinstance(processor, Qwen3OmniProcessor) else None
        self._rope = _rope_index(self.media.config) if self.media is not None else None

    def encode(self, row: dict[str, Any]) -> Encoded:
        expanded, media = self._expand(row)
        encoded = super().encode(expanded)
        self._check_placeholders(encoded.input_ids, media, row)
        extras = {**media.tensors, "position_ids": self.position_ids(encoded.input_ids, media.tensors)}
        return Encoded(encoded.input_ids, encoded.labels, extras)

    def encode_prompt(self, row: dict[str, Any]) -> Encoded:
        expanded, media = self._expand(row)
        encoded = super().encode_prompt(expanded)
        self._check_placeholders(encoded.input_ids, media, row)
        extras: dict[str, Any] = dict(media.tensors)
        if self.options.use_audio_in_video and media.video_tokens:
            extras["use_audio_in_video"] = True  # generation lays out the positions itself, and must know
        return Encoded(encoded.input_ids, encoded.labels, extras)

    def generation_prompt(self) -> str:
        """Answers open with the empty thinking block trained rows have (the Instruct models do not think),
        unless --enable-thinking true asks the model to think first."""
        prompt = ChatMLTemplate.generation_prompt(self)
        return prompt if self.options.enable_thinking else prompt + EMPTY_THINK

    def position_ids(self, input_ids: list[int], media: dict[str, torch.Tensor]) -> torch.Tensor:
        """(4, len) positions of one row: plain text positions, then the thinker's 3-D rotary positions."""
        ids = torch.tensor([input_ids], dtype=torch.long)
        text = torch.arange(len(input_ids), dtype=torch.float)[None]
        if self._rope is None:
            return text.expand(4, -1).clone()
        mask = media.get("feature_attention_mask")
        rope, _ = self._rope.get_rope_index(
            ids,
            image_grid_thw=media.get("image_grid_thw"),
            video_grid_thw=media.get("video_grid_thw"),
            attention_mask=torch.ones_like(ids),
            audio_seqlens=mask.sum(-1) if mask is not None else None,
            second_per_grids=media.get("video_second_per_grid"),
            use_audio_in_video=self.options.use_audio_in_video,
        )
        return torch.cat([text, rope[:, 0].float()])

    def _expand(self, row: dict[str, Any]) -> tuple[dict[str, Any], MediaTensors]:
        """The row with every media tag replaced by its placeholder tokens, and the media tensors."""
        row = tagged_row(row)
        tags = media_tags(row)
        if not tags:
            return row, MediaTensors()
        if self.media is None:
            raise row_error(row, "has media tags, but the model was loaded without its multimodal processor")
        media = self._load(row, tags)
        counts = {
            "image": iter(media.image_tokens),
            "audio": iter(media.audio_tokens),  # audio clips and videos' audio tracks, in the order of the tags
            "video": iter(media.video_tokens),
        }
        videos = iter(range(len(media.video_tokens)))
        tokenizer = self.tokenizer

        def placeholder(match: re.Match[str]) -> str:
            kind = match.group(1)
            if kind == "video" and self.options.use_audio_in_video:
                next(counts["video"])
                return self._video_with_audio(media, next(videos), next(counts["audio"]))
            if kind == "audio":
                start, pad, end = tokenizer.audio_bos_token, tokenizer.audio_token, tokenizer.audio_eos_token
            else:
                start, end = tokenizer.vision_bos_token, tokenizer.vision_eos_token
                pad = tokenizer.image_token if kind == "image" else tokenizer.video_token
            return start + pad * next(counts[kind]) + end

        expanded = with_origin(copy.copy(dict(row)), row)
        expanded["messages"] = [{**m, "content": MEDIA_TAG.sub(placeholder, m["content"])} for m in row["messages"]]
        return expanded, media

    def _load(self, row: dict[str, Any], tags: list[str]) -> MediaTensors:
        assert self.media is not None
        context = MediaContext.of_row(row)
        items: dict[str, list[Any]] = {}
        for kind, column in _COLUMNS.items():
            listed = list(row.get(column) or [])
            if tags.count(kind) != len(listed):
                raise row_error(
                    row, f"{tags.count(kind)} <{kind}> tag(s) in the messages but {len(listed)} in {column}"
                )
            items[kind] = listed
        settings, rate, with_audio = self.media.video, self.media.sampling_rate, self.options.use_audio_in_video
        videos = [
            load_video(
                item,
                fps=float(settings.get("fps") or DEFAULT_FPS),
                max_frames=int(settings.get("max_frames") or DEFAULT_MAX_FRAMES),
                with_audio=with_audio,
                sampling_rate=rate,
                context=context,
            )
            for item in items["video"]
        ]
        clips = iter([load_audio(item, sampling_rate=rate, context=context) for item in items["audio"]])
        audios, video_index = [], 0  # in tag order: a video's track takes the audio slot where the video is
        for tag in tags:
            if tag == "audio":
                audios.append(next(clips))
            elif tag == "video":
                track = videos[video_index].audio
                if with_audio and (track is None or not len(track)):
                    name = items["video"][video_index]
                    raise row_error(row, f"video {name} has no audio track, but --use-audio-in-video asks for it")
                if with_audio:
                    audios.append(track)
                video_index += 1
        return self.media.process([load_image(item, context=context) for item in items["image"]], audios, videos)

    def _video_with_audio(self, media: MediaTensors, index: int, audio_tokens: int) -> str:
        """A video's placeholder with its audio track, as Qwen3-Omni's processor writes it for
        ``use_audio_in_video``: both start tokens, the video's and the audio's pad tokens merged in time
        order (a video token at t x seconds-per-patch x position_id_per_seconds, an audio token at its index;
        the video's first on a tie), then both end tokens."""
        tokenizer, config = self.tokenizer, self.media.config
        t, h, w = (int(n) for n in media.tensors["video_grid_thw"][index])
        merge = self.media.video["merge_size"]
        seconds = float(media.tensors["video_second_per_grid"][index])
        frame_times = np.arange(t) * seconds * config.position_id_per_seconds
        times = np.concatenate([np.repeat(frame_times, (h // merge) * (w // merge)), np.arange(audio_tokens)])
        is_audio = np.concatenate([np.zeros(len(times) - audio_tokens, bool), np.ones(audio_tokens, bool)])
        order = np.lexsort((is_audio, times))  # by time, video before audio on ties; stable within each
        pads = "".join(tokenizer.audio_token if is_audio[i] else tokenizer.video_token for i in order)
        opening = tokenizer.vision_bos_token + tokenizer.audio_bos_token
        return opening + pads + tokenizer.audio_eos_token + tokenizer.vision_eos_token

    def _check_placeholders(self, input_ids: list[int], media: MediaTensors, row: dict[str, Any]) -> None:
        """Truncation (--max-length) must not cut into media: the model needs every placeholder."""
        if self.media is None:
            return
        config = self.media.config
        for count, token in (
            (media.image_tokens, config.image_token_id),
            (media.audio_tokens, config.audio_token_id),
            (media.video_tokens, config.video_token_id),
        ):
            if count and input_ids.count(token) != sum(count):
                raise row_error(
                    row,
                    f"--max-length {self.options.max_length} would cut into its media "
                    f"({sum(count)} placeholder tokens); raise --max-length",
                    RowTooLongError,
                )


def _rope_index(config: Any) -> Any:
    """An object whose `get_rope_index` is the thinker's (it needs only the config, not the weights)."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoePreTrainedModelForConditionalGeneration,
    )

    rope = Qwen3OmniMoePreTrainedModelForConditionalGeneration(config)
    rope.spatial_merge_size = config.vision_config.spatial_merge_size
    return rope
