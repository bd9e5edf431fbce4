"""Training the tiny Qwen3-Omni through `omni sft` and answering through `omni infer`.

Learning is shown on held-out rows: colours of shapes (chance 25%) and pitch of tones (chance 50%) are
answered from the medium alone, and the same runs on blanked media stay near chance.
"""

from __future__ import annotations

import json

import pytest
import torch
from omni.cli.main import main
from omni.testing.synthetic import write_shapes, write_tones

from tests.helpers import run_omni

# Full fine-tuning from random initialisation: constant 2e-3 in batches of 16 (the thinker has 0.36M parameters).
# 3e-3 sometimes stalls at a loss near 0.1 with two colours confused, depending on seed and thread count.
TRAIN_FLAGS = (
    "--tuner", "full", "--per-device-train-batch-size", "16", "--learning-rate", "2e-3",
    "--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--weight-decay", "0",
    "--gradient-checkpointing", "false", "--save-strategy", "no", "--logging-steps", "8",
)  # fmt: skip


def sft(model, dataset, out, *extra):
    assert (
        main(["sft", "--model", str(model), "--dataset", str(dataset), "--output-dir", str(out), *TRAIN_FLAGS, *extra])
        == 0
    )
    return out


def held_out_accuracy(model, dataset, tmp_path):
    """Greedy answers of `model` to the held-out rows (through `omni infer --input`), scored against `solution`."""
    answers = tmp_path / "answers.jsonl"
    argv = ["infer", "--model", str(model), "--input", str(dataset.held_out), "--output", str(answers)]
    assert main([*argv, "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    return sum(row["response"].strip() == row["solution"] for row in rows) / len(rows)


@pytest.fixture(scope="module")
def shapes_model(omni_dir, tmp_path_factory):
    """The thinker trained on 128 shapes for 24 epochs through the `omni` console script."""
    shapes = write_shapes(tmp_path_factory.mktemp("shapes"), train=128, held_out=16)
    out = tmp_path_factory.mktemp("shapes-run")
    argv = ["sft", "--model", str(omni_dir), "--dataset", str(shapes.train), "--output-dir", str(out)]
    result = run_omni(*argv, *TRAIN_FLAGS, "--num-train-epochs", "24", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, shapes


@pytest.fixture(scope="module")
def tones_model(omni_dir, tmp_path_factory):
    tones = write_tones(tmp_path_factory.mktemp("tones"), train=64, held_out=16)
    return sft(omni_dir, tones.train, tmp_path_factory.mktemp("tones-run"), "--num-train-epochs", "24"), tones


def test_shapes_are_answered_from_the_image(shapes_model, tmp_path):
    out, shapes = shapes_model
    assert held_out_accuracy(out, shapes, tmp_path) >= 0.9  # four colours: chance is 0.25
    losses = [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < losses[0] / 5


def test_tones_are_answered_from_the_audio(tones_model, tmp_path):
    out, tones = tones_model
    assert held_out_accuracy(out, tones, tmp_path) >= 0.9  # two answers: chance is 0.5


@pytest.mark.parametrize(
    ("write", "ceiling"), [(write_shapes, 0.5), (write_tones, 0.75)], ids=["blank-images", "silent-audio"]
)
def test_blank_media_leave_the_model_near_chance(omni_dir, tmp_path, write, ceiling):
    blank = write(tmp_path / "blank", train=64, held_out=16, blank=True)
    out = sft(omni_dir, blank.train, tmp_path / "run", "--num-train-epochs", "24")
    assert held_out_accuracy(out, blank, tmp_path) <= ceiling


def test_infer_answers_an_image_question_from_the_trained_model(shapes_model, capsys):
    out, shapes = shapes_model
    row = json.loads(shapes.held_out.read_text().splitlines()[0])
    image = shapes.directory / row["images"][0]
    argv = ["infer", "--model", str(out), "--image", str(image), "--query", "What colour is the shape?"]
    assert main([*argv, "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip() == row["solution"]


def test_infer_answers_an_audio_question_from_the_trained_model(tones_model, capsys):
    out, tones = tones_model
    row = json.loads(tones.held_out.read_text().splitlines()[1])
    audio = tones.directory / row["audios"][0]
    argv = ["infer", "--model", str(out), "--audio", str(audio), "--query", "Is this tone high or low?"]
    assert main([*argv, "--max-new-tokens", "4", "--stream", "false"]) == 0
    assert capsys.readouterr().out.strip() == row["solution"]


def test_speak_writes_a_wav_with_the_talker(talker_dir, tmp_path, capsys):
    import soundfile

    tones = write_tones(tmp_path / "t", train=1, held_out=0)
    audio = tones.directory / json.loads(tones.train.read_text())["audios"][0]
    wav = tmp_path / "answer.wav"
    argv = ["infer", "--model", str(talker_dir), "--audio", str(audio), "--query", "High or low?", "--speak", str(wav)]
    assert main([*argv, "--max-new-tokens", "3"]) == 0
    info = soundfile.info(str(wav))
    assert info.samplerate == 24000 and info.channels == 1 and info.frames > 0
    samples, _ = soundfile.read(str(wav))
    assert torch.isfinite(torch.as_tensor(samples)).all()


def test_speak_without_a_talker_is_a_clear_error(omni_dir, tmp_path, capsys):
    argv = ["infer", "--model", str(omni_dir), "--query", "Hi", "--speak", str(tmp_path / "a.wav")]
    assert main([*argv, "--max-new-tokens", "2"]) != 0
    assert "has no speech output" in capsys.readouterr().err


def test_chat_attaches_files_to_the_next_message(shapes_model, monkeypatch, capsys):
    import io

    out, shapes = shapes_model
    rows = [json.loads(line) for line in shapes.held_out.read_text().splitlines()[:2]]
    script = "".join(f"/image {shapes.directory / row['images'][0]}\nWhat colour is the shape?\n" for row in rows)
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["infer", "--model", str(out), "--max-new-tokens", "4"]) == 0
    # One answer per turn; the second turn sees both images, and its question is about the new one.
    assert capsys.readouterr().out.split() == [row["solution"] for row in rows]
