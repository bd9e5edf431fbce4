"""Modality encoders: load one image, audio clip or video of a dataset row into what processors take.

`image.load_image`, `audio.load_audio` and `video.load_video` accept every source form of
`sources.read_source` (paths, URLs, ``data:`` URIs, base64, bytes, OpenAI content parts). They are
registered as the built-in ``image``, ``audio`` and ``video`` encoders (`omni.builtin.encoders`).
This package imports nothing heavy itself; each loader module imports its decoder (Pillow, soundfile,
PyAV) when imported.
"""
