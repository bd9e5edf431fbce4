"""Rows spelled as ms-swift users write them (`text` + `image_path` + `audio_path`, `query`/`response` + `audio`,
untagged `images`) reach the thinker's towers, and train from the CLI with `--target_modules all-linear`."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from omni.testing.synthetic import write_shapes, write_tones

from tests.helpers import run_omni

# Library notices for their own developers that a run must not print (shown with --debug).
NOISE = ("Failed to load CPU gemm_4bit_forward", "Unrecognized keys in `rope_parameters`")


def rows_of(synthetic):
    return [json.loads(line) for line in synthetic.train.read_text().splitlines()]


def write_seed_rows(directory: Path, count: int) -> list[Path]:
    """Colours of shapes as `text` + `image_path` (JSONL), pitches of tones as `query`/`response`/`audio_path`
    (CSV), both together as `text` + `image` + `audio`, and `messages` with an untagged `images` column."""
    shapes = write_shapes(directory / "shapes", train=count, held_out=0)
    tones = write_tones(directory / "tones", train=count, held_out=0)
    shape_rows, tone_rows = rows_of(shapes), rows_of(tones)
    captions = shapes.directory / "captions.jsonl"
    captions.write_text(
        "".join(json.dumps({"text": r["solution"], "image_path": r["images"][0]}) + "\n" for r in shape_rows)
    )
    questions = tones.directory / "questions.csv"
    with questions.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "response", "audio_path"])
        writer.writerows(["High or low?", r["solution"], r["audios"][0]] for r in tone_rows)
    both = shapes.directory / "both.jsonl"
    pairs = list(zip(shape_rows, tone_rows, strict=True))[: count // 2]
    both.write_text(
        "".join(
            json.dumps(
                {
                    "text": f"{s['solution']} {t['solution']}",
                    "image": s["images"][0],
                    "audio": f"../tones/{t['audios'][0]}",
                }
            )
            + "\n"
            for s, t in pairs
        )
    )
    untagged = shapes.directory / "untagged.jsonl"
    untagged.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "Colour?"},
                        {"role": "assistant", "content": r["solution"]},
                    ],
                    "images": r["images"],
                }
            )
            + "\n"
            for r in shape_rows[: count // 2]
        )
    )
    return [captions, questions, both, untagged]


def test_each_spelling_encodes_its_media_for_the_towers(template, tmp_path):
    from omni.data import DataOptions, load_datasets

    files = write_seed_rows(tmp_path, count=2)
    rows = load_datasets(DataOptions(dataset=[str(f) for f in files])).train
    tokenizer = template.tokenizer
    image_pad, audio_pad = (tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|audio_pad|>"))
    for row, (images, audios) in zip(rows, [(1, 0)] * 2 + [(0, 1)] * 2 + [(1, 1)] + [(1, 0)], strict=True):
        encoded = template.encode(row)
        assert (image_pad in encoded.input_ids) == bool(images) and (audio_pad in encoded.input_ids) == bool(audios)
        assert ("pixel_values" in encoded.extras) == bool(images) and ("input_features" in encoded.extras) == bool(
            audios
        )
        answer = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != -100]
        assert tokenizer.decode(answer).startswith(row["messages"][-1]["content"])  # only the answer trains


@pytest.mark.slow
def test_seed_rows_train_all_linear_with_the_towers_untouched_and_the_adapter_answers_from_any_folder(
    talker_dir, tmp_path
):
    from omni_plugin_lora.tuner import LoraTuner
    from safetensors.torch import load_file

    files = write_seed_rows(tmp_path / "data", count=16)
    workdir, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    workdir.mkdir(), elsewhere.mkdir()
    model = os.path.relpath(talker_dir, workdir)  # as typed: relative to where the run starts
    argv = ["sft", "--model", model, "--dataset", *map(str, files), "--output-dir", "run", "--tuner", "lora"]
    argv += ["--target_modules", "all-linear", "--lora-rank", "16", "--learning-rate", "1e-2", "--warmup-ratio", "0"]
    argv += ["--num-train-epochs", "6", "--per-device-train-batch-size", "8", "--save-strategy", "no"]
    trained = run_omni(*argv, "--logging-steps", "2", "--gradient-checkpointing", "false", cwd=workdir, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "48 training rows" in trained.stderr  # 16 + 16 + 8 + 8 rows: every spelling read
    assert not [noise for noise in NOISE if noise in trained.stderr]
    run = workdir / "run"
    losses = [r["loss"] for r in map(json.loads, (run / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.9 * losses[0]
    assert json.loads((run / "args.json").read_text())["model"] == str(talker_dir)  # absolute, as saved
    assert json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"] == str(talker_dir)

    # The adapter's modules are the language model's Linear layers only, and merging it changes no tower weight.
    import transformers

    adapter = load_file(str(run / "adapter_model.safetensors"))
    assert adapter and all(k.startswith("base_model.model.model.layers.") for k in adapter)
    base = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(talker_dir).thinker
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    merged = LoraTuner.merge(LoraTuner.load(base, run)).state_dict()
    towers = [name for name in before if name.startswith(("visual.", "audio_tower."))]
    assert towers and all(torch.equal(before[name], merged[name]) for name in towers)
    assert any(not torch.equal(before[name], merged[name]) for name in before if name.startswith("model.layers."))

    # From another folder, with --debug after the command: the base is found, and the notices show again.
    image = files[0].parent / json.loads(files[0].read_text().splitlines()[0])["image_path"]
    argv = ["infer", "--debug", "--adapters", os.path.relpath(run, elsewhere), "--image", str(image), "--query", ""]
    answered = run_omni(*argv, "--max-new-tokens", "2", cwd=elsewhere, timeout=300)
    assert answered.returncode == 0, answered.stderr[-3000:]
    assert answered.stdout.strip() and NOISE[1] in answered.stderr
