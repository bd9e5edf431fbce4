"""Qwen3-Omni's preprocessing without torchvision: images, audio and video into the thinker's tensors.

transformers' `Qwen3OmniMoeProcessor` insists on its video processor, which is torchvision-based, and
torchvision cannot be installed beside the CPU torch build omni uses. This processor holds the same
parts the published checkpoint names — the tokenizer, the PIL image processor (`Qwen2VLImageProcessorPil`)
and the Whisper feature extractor — and does video the way Qwen2-VL's video processor does: frames resized
alike, normalised as images are, padded to whole temporal patches and cut into the same patch layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omni.api import Video
from PIL import Image

VIDEO_CONFIG = "video_preprocessor_config.json"
PREPROCESSOR_CONFIG = "preprocessor_config.json"


@dataclass
class MediaTensors:
    """One row's processed media and how many placeholder tokens each item takes, in row order."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    image_tokens: list[int] = field(default_factory=list)
    audio_tokens: list[int] = field(default_factory=list)
    video_tokens: list[int] = field(default_factory=list)


class Qwen3OmniProcessor:
    """Tokenizer, image processor, feature extractor and video settings of a Qwen3-Omni checkpoint.

    `config` is the thinker's config (token ids, merge size, audio window) that the template needs for
    placeholder counts and multimodal position ids.
    """

    def __init__(
        self, tokenizer: Any, image_processor: Any, feature_extractor: Any, video: dict[str, Any], config: Any
    ) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.feature_extractor = feature_extractor
        self.video = video
        self.config = config

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Qwen3OmniProcessor:
        """Load the parts from a checkpoint folder or hub id (as the published checkpoint lays them out)."""
        import transformers

        config = transformers.AutoConfig.from_pretrained(path)
        thinker = getattr(config, "thinker_config", config)
        image_processor = transformers.AutoImageProcessor.from_pretrained(path, backend="pil")
        video = _read_video_config(path, image_processor)
        return cls(
            transformers.AutoTokenizer.from_pretrained(path),
            image_processor,
            transformers.AutoFeatureExtractor.from_pretrained(path),
            video,
            thinker,
        )

    @property
    def sampling_rate(self) -> int:
        """The audio rate the feature extractor expects (16 kHz for Qwen3-Omni)."""
        return int(self.feature_extractor.sampling_rate)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the tokenizer, preprocessor_config.json (image processor and feature extractor in one file, as
        published) and video_preprocessor_config.json, so the folder loads again with `from_pretrained`."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(out)
        merged = {**self.feature_extractor.to_dict(), **self.image_processor.to_dict()}
        merged.update(image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen3OmniMoeProcessor")
        (out / PREPROCESSOR_CONFIG).write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (out / VIDEO_CONFIG).write_text(json.dumps(self.video, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def process(self, images: list[Image.Image], audios: list[np.ndarray], videos: list[Video]) -> MediaTensors:
        """The thinker's input tensors for one row's media and the placeholder count of each item."""
        from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths

        out = MediaTensors()
        merge = self.image_processor.merge_size**2
        if images:
            processed = self.image_processor(images=images, return_tensors="pt")
            out.tensors.update(pixel_values=processed["pixel_values"], image_grid_thw=processed["image_grid_thw"])
            out.image_tokens = [int(g.prod()) // merge for g in processed["image_grid_thw"]]
        if audios:
            features = self.feature_extractor(
                audios,
                sampling_rate=self.sampling_rate,
                padding="longest",
                truncation=False,
                return_attention_mask=True,
                return_tensors="pt",
            )
            mask = features["attention_mask"]
            out.tensors.update(input_features=features["input_features"], feature_attention_mask=mask)
            lengths = _get_feat_extract_output_lengths(mask.sum(-1), self.config.audio_config.n_window)
            out.audio_tokens = [int(n) for n in lengths]
        if videos:
            patches, grids, seconds = zip(*(self.video_patches(video) for video in videos), strict=True)
            out.tensors.update(
                pixel_values_videos=torch.cat(patches),
                video_grid_thw=torch.tensor(grids, dtype=torch.long),
                video_second_per_grid=torch.tensor(seconds, dtype=torch.float),
            )
            out.video_tokens = [int(np.prod(g)) // self.video["merge_size"] ** 2 for g in grids]
        return out

    def video_patches(self, video: Video) -> tuple[torch.Tensor, tuple[int, int, int], float]:
        """(patches, (t, h, w) grid, seconds per temporal patch) of one sampled video.

        Follows `Qwen2VLVideoProcessor`: every frame is resized to one size (a multiple of patch x merge
        within the pixel limits), rescaled and normalised; the frame count is padded to whole temporal
        patches by repeating the last frame; patches are laid out (t, h-blocks, w-blocks, merge rows,
        merge columns) with (channel, time, row, column) inside each patch.
        """
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        settings, images = self.video, self.image_processor
        patch, merge, temporal = settings["patch_size"], settings["merge_size"], settings["temporal_patch_size"]
        width, height = video.frames[0].size
        height, width = smart_resize(
            height,
            width,
            factor=patch * merge,
            min_pixels=settings["size"]["shortest_edge"],
            max_pixels=settings["size"]["longest_edge"],
        )
        resample = Image.Resampling(settings.get("resample", images.resample))
        frames = np.stack(
            [np.asarray(f.convert("RGB").resize((width, height), resample), dtype=np.float32) for f in video.frames]
        )
        if settings.get("do_rescale", True):
            frames = frames * float(settings.get("rescale_factor", images.rescale_factor))
        if settings.get("do_normalize", True):
            mean = np.asarray(settings.get("image_mean", images.image_mean), dtype=np.float32)
            std = np.asarray(settings.get("image_std", images.image_std), dtype=np.float32)
            frames = (frames - mean) / std
        frames = frames.transpose(0, 3, 1, 2)  # (time, channel, height, width)
        if pad := -len(frames) % temporal:
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        grid_t, grid_h, grid_w = len(frames) // temporal, height // patch, width // patch
        channels = frames.shape[1]
        patches = frames.reshape(
            grid_t, temporal, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch
        )
        patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(
            grid_t * grid_h * grid_w, channels * temporal * patch * patch
        )
        return torch.from_numpy(np.ascontiguousarray(patches)), (grid_t, grid_h, grid_w), temporal / video.fps


def _read_video_config(path: str | Path, image_processor: Any) -> dict[str, Any]:
    """video_preprocessor_config.json of a local folder or hub id; without one, the image processor's settings."""
    local = Path(path) / VIDEO_CONFIG
    if local.is_file():
        found: dict[str, Any] = json.loads(local.read_text(encoding="utf-8"))
    else:
        try:
            from huggingface_hub import hf_hub_download

            found = json.loads(Path(hf_hub_download(str(path), VIDEO_CONFIG)).read_text(encoding="utf-8"))
        except Exception:  # no video config published: frames are processed with the image settings
            found = {}
    defaults = {
        "patch_size": image_processor.patch_size,
        "merge_size": image_processor.merge_size,
        "temporal_patch_size": image_processor.temporal_patch_size,
        "size": dict(image_processor.size),
    }
    return {**defaults, **found}
