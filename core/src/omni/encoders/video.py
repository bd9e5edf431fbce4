"""Load a video item into frames sampled at a steady rate, plus its audio track when asked.

A video is a media container (MP4, WebM, MKV, GIF ... decoded with PyAV) or a list of frame images
(each any image source), the form many published datasets use.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from omni.encoders.audio import DEFAULT_SAMPLING_RATE, decode_audio_track, resample
from omni.encoders.image import load_image, to_rgb
from omni.encoders.sources import Blob, MediaContext, MediaItem, read_source

DEFAULT_FPS = 2.0
DEFAULT_MAX_FRAMES = 32


@dataclass
class Video:
    """Sampled frames in time order, the time of each (seconds), the rate they were sampled at, and
    the audio track when asked for and present (mono float32 at `sampling_rate`)."""

    frames: list[Image.Image]
    timestamps: list[float]
    fps: float
    audio: np.ndarray | None = None
    sampling_rate: int | None = None

    def arrays(self) -> np.ndarray:
        """The frames as one uint8 array of shape (frames, height, width, 3)."""
        return np.stack([np.asarray(frame) for frame in self.frames])


def load_video(
    item: MediaItem | Sequence[MediaItem],
    *,
    fps: float = DEFAULT_FPS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    with_audio: bool = False,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    context: MediaContext | None = None,
) -> Video:
    """The video `item` names, sampled at `fps` frames per second, at most `max_frames` (then evenly
    spread over the whole clip), at least one.

    A list of frame images counts as a clip already sampled at `fps`. With `with_audio`, a container's
    first audio stream comes back resampled to `sampling_rate` (None when the clip has no audio).
    Raises `DataError` naming the row and the item when it is missing or not a video.
    """
    context = context or MediaContext()
    if isinstance(item, list | tuple):
        return _from_frame_list(item, fps, max_frames, context)
    blob = read_source(item, "video", context)
    try:
        import av  # optional: only video files need it
    except ImportError:
        raise context.error("video", blob.name, "decoding video files needs PyAV: pip install av") from None
    try:
        video = _decode_container(blob, fps, max_frames)
        track = decode_audio_track(blob.data) if with_audio else None
    except (av.FFmpegError, ValueError) as exc:
        raise context.error("video", blob.name, f"is not a readable video ({exc})") from None
    if track is not None:
        video.audio, video.sampling_rate = resample(track[0], track[1], sampling_rate), sampling_rate
    return video


def sample_times(duration: float, fps: float, max_frames: int) -> list[float]:
    """The instants (seconds) to take frames at: ``duration * fps`` of them (at most `max_frames`, at
    least one), each in the middle of an equal slice of the clip."""
    count = max(1, min(max_frames, math.floor(duration * fps + 1e-6)))
    step = duration / count
    return [(i + 0.5) * step for i in range(count)]


def _from_frame_list(items: Sequence[MediaItem], fps: float, max_frames: int, context: MediaContext) -> Video:
    if not items:
        raise context.error("video", "[]", "is an empty list of frames")
    keep = np.linspace(0, len(items) - 1, min(max_frames, len(items))).round().astype(int)
    frames = [load_image(items[i], context=context) for i in keep]
    return Video(frames, [float(i) / fps for i in keep], fps * len(keep) / len(items))


def _decode_container(blob: Blob, fps: float, max_frames: int) -> Video:
    import av

    with av.open(io.BytesIO(blob.data)) as container:
        if not container.streams.video:
            raise ValueError("it has no video stream")
        stream = container.streams.video[0]
        period = 1.0 / float(stream.average_rate or 25)
        duration = _duration(container, stream)
        if duration is None:  # the container does not say: decode once to find the last frame
            duration = max(float(f.time or 0.0) for f in container.decode(stream)) + period
            container.seek(0)
        targets = sample_times(duration, fps, max_frames)
        frames: list[Image.Image] = []
        timestamps: list[float] = []
        for frame in container.decode(stream):
            start = float(frame.time or 0.0)
            # A frame shows from its time until the next one; it serves every target in that span.
            while len(frames) < len(targets) and targets[len(frames)] < start + period:
                frames.append(to_rgb(frame.to_image()))
                timestamps.append(start)
            if len(frames) == len(targets):
                break
    if not frames:
        raise ValueError("it has no decodable frames")
    return Video(frames, timestamps, len(targets) / duration)


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # container durations are in AV_TIME_BASE units
    return None
