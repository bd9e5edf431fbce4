"""Load an audio item into a mono float32 waveform at a requested sampling rate."""

from __future__ import annotations

import io

import numpy as np
import soundfile

from omni.encoders.sources import Blob, MediaContext, MediaItem, read_source

DEFAULT_SAMPLING_RATE = 16000
# Resampling filter: zero crossings of the sinc kept on each side, and the Kaiser window's shape.
_ZERO_CROSSINGS = 16
_KAISER_BETA = 8.6
_CHUNK = 4096  # output samples computed at once, bounding memory on long clips


def load_audio(
    item: MediaItem, *, sampling_rate: int = DEFAULT_SAMPLING_RATE, context: MediaContext | None = None
) -> np.ndarray:
    """The audio `item` names as a mono float32 waveform at `sampling_rate` Hz (channels averaged).

    Decodes with soundfile (WAV, FLAC, OGG, MP3 ...); formats libsndfile lacks (M4A/AAC, audio inside a
    video container) fall back to PyAV when it is installed. Raises `DataError` naming the row and the
    item when it is missing or not audio.
    """
    blob = read_source(item, "audio", context)
    wave, rate = decode_audio(blob, context or MediaContext())
    return resample(wave, rate, sampling_rate)


def decode_audio(blob: Blob, context: MediaContext) -> tuple[np.ndarray, int]:
    """A blob's mono float32 samples and their sampling rate; raises `DataError` when it is not audio."""
    try:
        samples, rate = soundfile.read(io.BytesIO(blob.data), dtype="float32", always_2d=True)
        return samples.mean(axis=1, dtype=np.float32), int(rate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        problem = f"is not readable audio ({exc})"
    try:
        import av  # optional: only formats libsndfile lacks need it
    except ImportError:
        raise context.error(
            "audio", blob.name, f"{problem}; installing PyAV (pip install av) adds more formats"
        ) from None
    try:
        decoded = decode_audio_track(blob.data)
    except (av.FFmpegError, ValueError) as exc:
        raise context.error("audio", blob.name, f"{problem}; PyAV: {exc}") from None
    if decoded is None:
        raise context.error("audio", blob.name, f"{problem}; it has no audio stream")
    return decoded


def decode_audio_track(data: bytes) -> tuple[np.ndarray, int] | None:
    """The first audio stream of a media container (mono float32, native rate), or None when it has none.

    Needs PyAV (``pip install av``); raises ImportError without it.
    """
    import av

    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        # ffmpeg's resampler only mixes channels and converts the sample format here; the rate is kept.
        mixer = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1) for frame in [*container.decode(stream), None] for out in mixer.resample(frame)
        ]
    wave = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return wave.astype(np.float32, copy=False), int(rate)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """`wave` (1-D) resampled from `orig_rate` to `target_rate` Hz, band-limited so nothing aliases.

    Windowed-sinc interpolation in numpy: scipy is not a dependency of omni-core, and torchaudio cannot
    be installed beside this torch build. Each output sample is a Kaiser-windowed sinc sum over its
    input neighbours, with the cutoff at the lower of the two Nyquist frequencies.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if orig_rate == target_rate or wave.size == 0:
        return wave
    ratio = target_rate / orig_rate
    cutoff = min(1.0, ratio)  # as a fraction of the input Nyquist frequency
    half = int(np.ceil(_ZERO_CROSSINGS / cutoff))  # filter half-width in input samples
    taps = np.arange(-half + 1, half + 1)
    padded = np.pad(wave.astype(np.float64), (half, half + 1))
    out = np.empty(int(np.ceil(wave.size * ratio)), dtype=np.float32)
    for start in range(0, out.size, _CHUNK):
        position = np.arange(start, min(start + _CHUNK, out.size)) / ratio  # in input samples
        neighbours = np.floor(position).astype(np.int64)[:, None] + taps[None, :]
        distance = position[:, None] - neighbours
        window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (distance / half) ** 2, 0.0, 1.0))) / np.i0(_KAISER_BETA)
        kernel = cutoff * np.sinc(cutoff * distance) * window
        out[start : start + position.size] = (padded[neighbours + half] * kernel).sum(axis=1)
    return out
