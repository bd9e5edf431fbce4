"""Options of the built-in encoders (light: imported when plugins load).

Field names match the loader's keyword arguments, so ``load_video(item, **asdict(options))`` works; the
aliases are the spellings ms-swift users know (its ``FPS``, ``FPS_MAX_FRAMES``, ``USE_AUDIO_IN_VIDEO``).
"""

from __future__ import annotations

from dataclasses import dataclass

from omni.options import option


@dataclass
class VideoOptions:
    fps: float = option(2.0, help="frames per second sampled from each video", aliases=("video_fps",))
    max_frames: int = option(
        32, help="most frames taken from one video (then spread over the whole clip)", aliases=("fps_max_frames",)
    )
    with_audio: bool = option(
        False,
        help="also load each video's audio track (Qwen-Omni's use_audio_in_video)",
        aliases=("use_audio_in_video",),
    )
