"""Small learnable multimodal datasets that prove a modality pathway works, not just that it runs.

Each writer makes media files plus ``train.jsonl`` and ``held_out.jsonl`` in the messages format
(`<image>`/`<audio>`/`<video>` tags, ``images``/``audios``/``videos`` columns with paths relative to the
JSONL file, and a ``solution`` column for reward functions). The answer depends only on the medium:

- `write_shapes`: a coloured shape at a random place, size and kind; "What colour is the shape?" ->
  red / green / blue / yellow.
- `write_tones`: one second of a sine tone at 16 kHz with random amplitude and phase; "Is this tone high
  or low?" -> high (1-2 kHz) / low (150-400 Hz).
- `write_motion`: a short clip of a dot crossing the frame; "Which way does the dot move?" -> left / right.
- `write_video_tones`: a short clip of still grey frames whose audio track is one of the tones; "Is this
  tone high or low?" -> high / low, answerable only from the video's own audio (`--use-audio-in-video`).

Answers are balanced (each split cycles through them before shuffling) and everything follows `seed`.
``blank=True`` writes the same rows with blank media (grey images, silence, grey frames): a model that
learns the task from real media but not from blank media is using the pathway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

SHAPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
}
TONE_BANDS_HZ: dict[str, tuple[float, float]] = {"low": (150.0, 400.0), "high": (1000.0, 2000.0)}
DIRECTIONS: tuple[str, ...] = ("left", "right")
SHAPE_QUESTION = "What colour is the shape?"
TONE_QUESTION = "Is this tone high or low?"
MOTION_QUESTION = "Which way does the dot move?"
_BLANK_GREY = (128, 128, 128)


@dataclass(frozen=True)
class SyntheticSet:
    """Where a synthetic dataset was written, and its possible answers."""

    directory: Path
    train: Path
    held_out: Path
    answers: tuple[str, ...]


# A sample writer draws one medium showing `answer`, writes it under `stem` and returns its file name.
_SampleWriter = Callable[[np.random.Generator, str, Path, str], str]


def write_shapes(
    directory: str | Path, *, train: int = 32, held_out: int = 8, seed: int = 0, size: int = 64, blank: bool = False
) -> SyntheticSet:
    """Write the coloured-shapes dataset (PNG images of `size` x `size`) into `directory`."""

    def sample(rng: np.random.Generator, answer: str, media: Path, stem: str) -> str:
        draw_shape(rng, SHAPE_COLOURS[answer], size, blank=blank).save(media / f"{stem}.png")
        return f"{stem}.png"

    return _write_set(directory, "image", SHAPE_QUESTION, tuple(SHAPE_COLOURS), sample, train, held_out, seed)


def two_image_row(shapes: SyntheticSet, split: str = "train") -> dict[str, Any]:
    """A two-turn row about the first two images of `shapes`' `split` ("train" or "held_out"), a system turn first."""
    rows = [json.loads(line) for line in getattr(shapes, split).read_text().splitlines()[:2]]
    return {
        "messages": [
            {"role": "system", "content": "Answer with one word."},
            {"role": "user", "content": "<image>What colour is the shape?"},
            {"role": "assistant", "content": rows[0]["solution"]},
            {"role": "user", "content": "And here? <image>"},
            {"role": "assistant", "content": rows[1]["solution"]},
        ],
        "images": [str(shapes.directory / row["images"][0]) for row in rows],
    }


def write_tones(
    directory: str | Path,
    *,
    train: int = 32,
    held_out: int = 8,
    seed: int = 0,
    sampling_rate: int = 16000,
    seconds: float = 1.0,
    blank: bool = False,
) -> SyntheticSet:
    """Write the high-or-low tones dataset (16-bit WAV files) into `directory`."""
    import soundfile

    def sample(rng: np.random.Generator, answer: str, media: Path, stem: str) -> str:
        wave = draw_tone(rng, TONE_BANDS_HZ[answer], sampling_rate, seconds, blank=blank)
        soundfile.write(media / f"{stem}.wav", wave, sampling_rate, subtype="PCM_16")
        return f"{stem}.wav"

    return _write_set(directory, "audio", TONE_QUESTION, tuple(TONE_BANDS_HZ), sample, train, held_out, seed)


def write_motion(
    directory: str | Path,
    *,
    train: int = 16,
    held_out: int = 4,
    seed: int = 0,
    frames: int = 8,
    size: int = 32,
    fps: int = 4,
    blank: bool = False,
) -> SyntheticSet:
    """Write the moving-dot dataset (MP4 clips of `frames` frames at `fps`) into `directory`.

    Needs PyAV (``pip install av``).
    """

    def sample(rng: np.random.Generator, answer: str, media: Path, stem: str) -> str:
        write_video(media / f"{stem}.mp4", draw_motion(rng, answer, frames, size, blank=blank), fps=fps)
        return f"{stem}.mp4"

    return _write_set(directory, "video", MOTION_QUESTION, DIRECTIONS, sample, train, held_out, seed)


def write_video_tones(
    directory: str | Path,
    *,
    train: int = 32,
    held_out: int = 8,
    seed: int = 0,
    seconds: float = 1.0,
    fps: int = 4,
    size: int = 32,
    sampling_rate: int = 16000,
) -> SyntheticSet:
    """Write MP4 clips (`seconds` of identical grey frames) with a tone as their AAC audio track into
    `directory`. The frames are the same in every clip, so only the track tells the answers apart.

    Needs PyAV (``pip install av``).
    """

    def sample(rng: np.random.Generator, answer: str, media: Path, stem: str) -> str:
        wave = draw_tone(rng, TONE_BANDS_HZ[answer], sampling_rate, seconds)
        frames = [np.full((size, size, 3), _BLANK_GREY, dtype=np.uint8)] * max(1, round(seconds * fps))
        write_video(media / f"{stem}.mp4", frames, fps=fps, audio=wave, sampling_rate=sampling_rate)
        return f"{stem}.mp4"

    return _write_set(directory, "video", TONE_QUESTION, tuple(TONE_BANDS_HZ), sample, train, held_out, seed)


def draw_shape(
    rng: np.random.Generator, colour: tuple[int, int, int], size: int, *, blank: bool = False
) -> Image.Image:
    """A white `size` x `size` RGB image with one circle, square or triangle of `colour` (random kind,
    place and size); uniform grey when `blank`."""
    if blank:
        return Image.new("RGB", (size, size), _BLANK_GREY)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    extent = int(rng.integers(size // 2, 3 * size // 4 + 1))
    left, top = (int(v) for v in rng.integers(0, size - extent, size=2))
    box = (left, top, left + extent, top + extent)
    draw = ImageDraw.Draw(image)
    kind = rng.choice(["circle", "square", "triangle"])
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left, top + extent), (left + extent, top + extent), (left + extent // 2, top)], fill=colour)
    return image


def draw_tone(
    rng: np.random.Generator, band_hz: tuple[float, float], sampling_rate: int, seconds: float, *, blank: bool = False
) -> np.ndarray:
    """A float32 sine with frequency drawn from `band_hz`, random amplitude (0.2-0.9) and phase; silence
    when `blank`."""
    t = np.arange(int(sampling_rate * seconds)) / sampling_rate
    if blank:
        return np.zeros_like(t, dtype=np.float32)
    frequency = rng.uniform(*band_hz)
    amplitude, phase = rng.uniform(0.2, 0.9), rng.uniform(0, 2 * np.pi)
    return (amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


def draw_motion(
    rng: np.random.Generator, direction: str, frames: int, size: int, *, blank: bool = False
) -> list[np.ndarray]:
    """`frames` white uint8 RGB frames with a black dot moving steadily `direction` ("left"/"right")
    along a random row; uniform grey frames when `blank`."""
    if blank:
        return [np.full((size, size, 3), _BLANK_GREY, dtype=np.uint8) for _ in range(frames)]
    radius = max(2, size // 12)
    row = int(rng.integers(radius, size - radius))
    travel = np.linspace(radius, size - 1 - radius, frames)
    xs = travel if direction == "right" else travel[::-1]
    yy, xx = np.mgrid[:size, :size]
    clips = []
    for x in xs:
        frame = np.full((size, size, 3), 255, dtype=np.uint8)
        frame[(yy - row) ** 2 + (xx - x) ** 2 <= radius**2] = 0
        clips.append(frame)
    return clips


def write_video(
    path: str | Path,
    frames: Sequence[np.ndarray],
    *,
    fps: int,
    audio: np.ndarray | None = None,
    sampling_rate: int = 16000,
) -> Path:
    """Write uint8 RGB `frames` (even height and width) as an MP4 (MPEG-4 video at near-lossless quality,
    plus `audio` as an AAC track when given). Needs PyAV."""
    import av

    path = Path(path)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"qscale": "1"}  # near-lossless: the dot must stay where it was drawn
        sound = container.add_stream("aac", rate=sampling_rate) if audio is not None else None
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(
                np.asarray(audio, dtype=np.float32)[None, :], format="flt", layout="mono"
            )
            chunk.sample_rate = sampling_rate
            container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def _write_set(
    directory: str | Path,
    modality: str,
    question: str,
    answers: tuple[str, ...],
    sample: _SampleWriter,
    train: int,
    held_out: int,
    seed: int,
) -> SyntheticSet:
    out = Path(directory)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    # Separate streams for labels and media, so the blank variant has exactly the same rows.
    label_rng, media_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    splits = {"train": (out / "train.jsonl", train), "held_out": (out / "held_out.jsonl", held_out)}
    for split, (jsonl, count) in splits.items():
        labels = [answers[i % len(answers)] for i in range(count)]
        label_rng.shuffle(labels)
        with jsonl.open("w", encoding="utf-8") as f:
            for i, answer in enumerate(labels):
                name = sample(media_rng, answer, media, f"{split}_{i:04d}")
                f.write(json.dumps(_row(modality, question, answer, f"media/{name}")) + "\n")
    return SyntheticSet(out, splits["train"][0], splits["held_out"][0], answers)


def _row(modality: str, question: str, answer: str, file: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"<{modality}>{question}"},
            {"role": "assistant", "content": answer},
        ],
        f"{modality}s": [file],
        "solution": answer,
    }
