"""DPO on preference rows with images, on a tiny Qwen3-Omni and a tiny Llama 3.2 Vision (Mllama): the batch TRL
builds is right, and it learns.

The task: "What colour is the shape?" about a synthetic image; the chosen answer names the shape's colour,
the rejected one another colour. Text alone cannot tell them apart (every colour is chosen and rejected
equally often), so held-out reward accuracy above 50% means the image reached the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omni.api import Row
from omni.cli.main import main

from tests.preference_task import score, template_for, write_jsonl

# 90 full-tuning steps of 8 pairs at lr 2e-3 on 64 training pairs; 32 held-out pairs.
# Measured: reward accuracy 0.5 before (policy = reference), 0.97 after (31 of 32; mean margin 35 nats).
MIN_ACCURACY = 0.9


def image_pairs(jsonl: Path) -> list[Row]:
    """The shapes rows as preference pairs: the right colour chosen, a wrong one (cycling) rejected."""
    from omni.testing.synthetic import SHAPE_COLOURS

    rows = []
    for i, line in enumerate(jsonl.read_text().splitlines()):
        row = json.loads(line)
        wrong = [c for c in SHAPE_COLOURS if c != row["solution"]]
        row["rejected_response"] = wrong[i % len(wrong)]
        row["images"] = [str(jsonl.parent / p) for p in row["images"]]
        rows.append(Row(row, str(jsonl), i + 1))
    return rows


@pytest.fixture(scope="module")
def omni_model(tmp_path_factory) -> Path:
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> tuple[list[Row], list[Row]]:
    from omni.testing.synthetic import write_shapes

    written = write_shapes(tmp_path_factory.mktemp("shapes"), train=64, held_out=32, seed=3)
    return image_pairs(written.train), image_pairs(written.held_out)


def load_thinker(path: Path):
    from omni.api import get_registry, load_model
    from omni.train.options import TrainOptions

    return load_model(TrainOptions(model=str(path)), get_registry()).model


def assert_the_batch_scores_every_sequence_as_alone(model, template, rows, batch) -> None:
    """TRL's fused forward over the collated [chosen..., rejected...] `batch` of `rows` gives each sequence the
    log-probability it has when run by itself with its own media and per-token inputs."""
    import torch
    from omni_plugin_dpo.trainers import _serve_fused_calls_from_logits
    from trl.trainer.utils import add_fused_lm_head

    from tests.preference_task import _answer_logps

    model.eval()
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    _serve_fused_calls_from_logits(model)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {k: v for k, v in batch.items() if k != "completion_mask"}
    with torch.no_grad():
        batched = model(**inputs, labels=labels, fused_lm_head=True, use_cache=False).log_probs.sum(1)
    alone = _answer_logps(model, template, rows, "chosen_ids") + _answer_logps(model, template, rows, "rejected_ids")
    assert batched.tolist() == pytest.approx(alone, abs=1e-4)


def train_dpo(model: Path, pairs: list[Row], out: Path, *, steps: int) -> None:
    """`omni rlhf --algo dpo` from the CLI: full tuning, batches of 8 pairs at a constant lr 2e-3."""
    argv = ["rlhf", "--algo", "dpo", "--model", str(model), "--output-dir", str(out), "--tuner", "full"]
    argv += ["--dataset", str(write_jsonl(pairs, out.parent / "pairs.jsonl"))]
    argv += ["--max-steps", str(steps), "--learning-rate", "2e-3", "--per-device-train-batch-size", "8"]
    argv += ["--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--gradient-checkpointing", "false"]
    argv += ["--save-strategy", "no", "--logging-steps", "20"]
    assert main(argv) == 0


def test_pairs_carry_the_prompts_media_and_each_sequences_positions(omni_model, shapes):
    from omni_plugin_dpo.encoding import encode_pair

    template = template_for(omni_model)
    row = shapes[0][0]
    pair = encode_pair(template, row, "dpo")
    chosen = template.encode(row)
    assert pair["prompt_ids"] + pair["chosen_ids"] == chosen.input_ids
    assert pair["pixel_values"].equal(chosen.extras["pixel_values"])
    assert pair["image_grid_thw"].equal(chosen.extras["image_grid_thw"])
    assert pair["chosen_position_ids"].equal(chosen.extras["position_ids"])
    rejected_length = len(pair["prompt_ids"]) + len(pair["rejected_ids"])
    assert pair["rejected_position_ids"].shape == (4, rejected_length)


def test_the_concatenated_batch_scores_every_sequence_as_alone(omni_model, shapes):
    """TRL's forward over [chosen..., rejected...] with the collated media gives each sequence the
    log-probability it has when run by itself with its own image and positions (pads differ in length)."""
    from omni_plugin_dpo.encoding import encode_pair
    from omni_plugin_dpo.trainers import MediaPreferenceCollator
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    template = template_for(omni_model)
    rows = shapes[1][:3]
    features = [encode_pair(template, row, "dpo") for row in rows]
    assert len({len(f["rejected_ids"]) for f in features} | {len(f["chosen_ids"]) for f in features}) > 1
    batch = MediaPreferenceCollator(DataCollatorForPreference(pad_token_id=template.tokenizer.pad_token_id))(features)
    assert batch["pixel_values"].shape[0] == 2 * sum(len(f["pixel_values"]) for f in features)
    assert batch["position_ids"].shape == (4, 6, batch["input_ids"].shape[1])

    assert_the_batch_scores_every_sequence_as_alone(load_thinker(omni_model), template, rows, batch)


def test_dpo_on_image_rows_raises_held_out_reward_accuracy(omni_model, shapes, tmp_path):
    train_rows, held_out = shapes
    out = tmp_path / "out"
    train_dpo(omni_model, train_rows, out, steps=90)
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert [r["rewards/accuracies"] for r in logged if "loss" in r][-1] > 0.5  # TRL's own metric, on training rows

    template = template_for(omni_model)
    reference = load_thinker(omni_model)
    before = score(reference, reference, template, held_out)
    after = score(load_thinker(out), reference, template, held_out)
    assert before.reward_accuracy == 0.5
    assert after.reward_accuracy >= MIN_ACCURACY, after
    assert after.margin > 0


def test_other_methods_refuse_image_rows(omni_model, shapes, tmp_path, capsys):
    data = write_jsonl(shapes[0][:2], tmp_path / "pairs.jsonl")
    argv = ["rlhf", "--algo", "simpo", "--model", str(omni_model), "--dataset", str(data)]
    assert main([*argv, "--output-dir", str(tmp_path / "out"), "--tuner", "full"]) == 2
    assert "--algo simpo trains on text rows only; rows with images, audio or video need dpo" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mllama(tmp_path_factory) -> Path:
    from omni_plugin_families.testing import build_tiny_mllama

    return build_tiny_mllama(tmp_path_factory.mktemp("tiny-mllama"))


@pytest.mark.parametrize("builder", ["mllama", "qwen3_vl", "gemma3"])
def test_vision_language_pairs_carry_each_sequences_per_token_inputs_and_score_as_alone(builder, shapes, tmp_path):
    """Per-token inputs (Mllama's cross-attention mask, Qwen3-VL's and Gemma 3's token types) have a row per token:
    each sequence carries its own (the answers differ in length), cut and padded with the ids, and the concatenated
    batch scores every sequence as it scores alone."""
    import omni_plugin_families.testing as families
    from omni_plugin_dpo.encoding import encode_pair
    from omni_plugin_dpo.trainers import MediaPreferenceCollator
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    model_dir = getattr(families, f"build_tiny_{builder}")(tmp_path / builder)
    template = template_for(model_dir)
    rows = [Row(dict(row), row.source, row.location) for row in shapes[1][:3]]
    rows[0]["rejected_response"] = "a bright shade of blue, I think"  # answers of different lengths
    features = [encode_pair(template, row, "dpo") for row in rows]
    key = next(k.removeprefix("chosen_") for k in features[0] if k.startswith("chosen_") and k != "chosen_ids")
    assert features[0][f"chosen_{key}"].equal(template.encode(rows[0]).extras[key])
    rejected_length = len(features[0]["prompt_ids"]) + len(features[0]["rejected_ids"])
    assert features[0][f"rejected_{key}"].shape[:2] == (1, rejected_length)
    batch = MediaPreferenceCollator(DataCollatorForPreference(pad_token_id=template.tokenizer.pad_token_id))(features)
    assert batch[key].shape[:2] == batch["input_ids"].shape

    assert_the_batch_scores_every_sequence_as_alone(load_thinker(model_dir), template, rows, batch)


# 160 steps of 8 pairs at lr 2e-3, full tuning. Measured: reward accuracy 0.5 before, 0.84 after (27 of 32); the tiny
# Mllama, whose images reach the text only through one cross-attention layer, learns the colours more slowly than
# the tiny Qwen3-Omni above (320 steps: 0.78, over-fitted to the 64 training pairs).
MLLAMA_MIN_ACCURACY = 0.75


def test_dpo_on_llama_vision_image_rows_raises_held_out_reward_accuracy(mllama, shapes, tmp_path):
    train_rows, held_out = shapes
    out = tmp_path / "out"
    train_dpo(mllama, train_rows, out, steps=160)
    template = template_for(mllama)
    reference = load_thinker(mllama)
    assert score(reference, reference, template, held_out).reward_accuracy == 0.5
    after = score(load_thinker(out), reference, template, held_out)
    assert after.reward_accuracy >= MLLAMA_MIN_ACCURACY, after
    assert after.margin > 0
