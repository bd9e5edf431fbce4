"""Built-in modality encoders: ``image``, ``audio`` and ``video``, usable by any model plugin.

Only light modules are imported here: the loaders (Pillow, soundfile, PyAV) are lazy references.
"""

from __future__ import annotations

from omni import hookimpl
from omni.encoders.options import VideoOptions
from omni.registry import EncoderSpec


@hookimpl
def register_encoders(register):
    register(
        EncoderSpec(
            name="image",
            modality="image",
            description="images from paths, URLs, data: URIs, base64 or bytes, as RGB PIL images",
            impl="omni.encoders.image:load_image",
        )
    )
    register(
        EncoderSpec(
            name="audio",
            modality="audio",
            description="audio files (WAV, FLAC, OGG, MP3 ...) as mono float32 waveforms at the processor's rate",
            impl="omni.encoders.audio:load_audio",
        )
    )
    register(
        EncoderSpec(
            name="video",
            modality="video",
            description="videos (files via PyAV, or lists of frames) as frames sampled at --fps, plus their audio",
            impl="omni.encoders.video:load_video",
            options=VideoOptions,
        )
    )
