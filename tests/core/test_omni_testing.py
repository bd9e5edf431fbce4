"""omni.testing's synthetic datasets: shapes (images), tones (audio) and motion (video), each with its answer in
one medium only."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter

import numpy as np
import pytest
from omni.encoders.audio import load_audio
from omni.encoders.image import load_image
from omni.encoders.sources import MediaContext
from omni.encoders.video import load_video
from omni.testing.synthetic import SHAPE_COLOURS, write_motion, write_shapes, write_tones

needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="video files need PyAV (pip install av)")


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("write", "column", "answers"),
    [
        (write_shapes, "images", tuple(SHAPE_COLOURS)),
        (write_tones, "audios", ("low", "high")),
        pytest.param(write_motion, "videos", ("left", "right"), marks=needs_av),
    ],
    ids=["shapes", "tones", "motion"],
)
def test_synthetic_sets_are_deterministic_balanced_and_well_formed(tmp_path, write, column, answers):
    def snapshot(dataset):
        """Each split's rows with the bytes of their media."""
        return {
            split: [(row, (dataset.directory / row[column][0]).read_bytes()) for row in rows(path)]
            for split, path in (("train", dataset.train), ("held_out", dataset.held_out))
        }

    first = snapshot(write(tmp_path / "a", train=8, held_out=4, seed=3))
    assert first == snapshot(write(tmp_path / "b", train=8, held_out=4, seed=3))
    assert first != snapshot(write(tmp_path / "c", train=8, held_out=4, seed=4))
    for split in first.values():
        for row, _ in split:
            assert row["messages"][0]["content"].startswith(f"<{column[:-1]}>")
            assert row["messages"][1]["content"] == row["solution"]
        counts = Counter(row["solution"] for row, _ in split)
        assert set(counts) == set(answers) and len(set(counts.values())) == 1


def test_shape_colour_is_the_answer(tmp_path):
    shapes = write_shapes(tmp_path, train=8, held_out=0)
    for row in rows(shapes.train):
        pixels = np.asarray(load_image(row["images"][0], context=MediaContext(base_dir=tmp_path))).reshape(-1, 3)
        coloured = {tuple(p) for p in pixels} - {(255, 255, 255)}
        assert SHAPE_COLOURS[row["solution"]] in coloured


def test_tone_pitch_is_the_answer(tmp_path):
    tones = write_tones(tmp_path, train=8, held_out=0)
    for row in rows(tones.train):
        wave = load_audio(row["audios"][0], context=MediaContext(base_dir=tmp_path))
        assert wave.size == 16000
        peak = np.fft.rfftfreq(wave.size, 1 / 16000)[np.argmax(np.abs(np.fft.rfft(wave)))]
        assert (peak > 700) == (row["solution"] == "high")


@needs_av
def test_dot_motion_is_the_answer(tmp_path):
    motion = write_motion(tmp_path, train=4, held_out=0)
    for row in rows(motion.train):
        video = load_video(row["videos"][0], fps=4, context=MediaContext(base_dir=tmp_path))
        columns = [int(np.argmin(np.asarray(f.convert("L")).min(axis=0))) for f in video.frames]
        assert (columns[-1] > columns[0]) == (row["solution"] == "right")


def test_blank_variant_keeps_rows_and_blanks_media(tmp_path):
    real = write_shapes(tmp_path / "real", train=4, held_out=2)
    blank = write_shapes(tmp_path / "blank", train=4, held_out=2, blank=True)
    assert rows(real.train) == rows(blank.train) and rows(real.held_out) == rows(blank.held_out)
    image = np.asarray(load_image(rows(blank.train)[0]["images"][0], context=MediaContext(base_dir=blank.directory)))
    assert (image == image[0, 0]).all()
    silent = write_tones(tmp_path / "silent", train=2, held_out=0, blank=True)
    wave = load_audio(rows(silent.train)[0]["audios"][0], context=MediaContext(base_dir=silent.directory))
    assert np.abs(wave).max() == 0
