"""`omni rlhf --algo rm`: a reward model learns the synthetic preference (tests/preference_task.py), measured by
scoring held-out pairs with the saved model as transformers loads it (AutoModelForSequenceClassification)."""

from __future__ import annotations

import json

import pytest
from omni.api import DataError, Row
from omni.cli.main import main

from tests.preference_task import reward_model_scores, template_for, write_jsonl

# Measured: 30 steps of 8 pairs at lr 5e-3 score 0.97-1.0 of 32 held-out pairs right, margin 5-8; the fresh
# score head ranks them by chance (0.0-1.0: every chosen answer starts with "A"), margin about 0.01.
MIN_ACCURACY = 0.9


def train_rm(model, data, out, tuner: str, *extra: str) -> int:
    argv = ["rlhf", "--rlhf_type", "rm", "--model", str(model), "--dataset", str(data), "--output-dir", str(out)]
    argv += ["--tuner", tuner, "--max-steps", "30", "--learning-rate", "5e-3", "--per-device-train-batch-size", "8"]
    argv += ["--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--gradient-checkpointing", "false"]
    argv += ["--save-strategy", "no", "--logging-steps", "10", *extra]
    return main(argv)


def test_lora_reward_model_learns_and_merges_into_a_sequence_classifier(
    one_thread, tiny_model, train_pairs, held_out_pairs, tmp_path
):
    pytest.importorskip("omni_plugin_lora")
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "rm"
    assert train_rm(tiny_model, write_jsonl(train_pairs, tmp_path / "pairs.jsonl"), out, "lora") == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    template = template_for(tiny_model)
    fresh_head = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    before = reward_model_scores(fresh_head, template, held_out_pairs)
    # adapter + base, as peft loads it: the trained score head comes from the adapter
    trained = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1), out
    )
    after = reward_model_scores(trained, template, held_out_pairs)
    assert after.reward_accuracy >= MIN_ACCURACY, after
    assert after.margin > 1.0 and after.margin > 20 * abs(before.margin), (before, after)
    logged = [r for r in map(json.loads, (out / "logging.jsonl").open()) if "accuracy" in r]
    assert logged[-1]["accuracy"] >= 0.5 and logged[-1]["margin"] > 1.0  # TRL's metrics, in omni's log

    merged = tmp_path / "merged"
    assert main(["export", "--adapters", str(out), "--merge-lora", "--output-dir", str(merged)]) == 0
    assert json.loads((merged / "config.json").read_text())["architectures"] == ["Qwen3ForSequenceClassification"]
    scores = reward_model_scores(AutoModelForSequenceClassification.from_pretrained(merged), template, held_out_pairs)
    assert scores.margin == pytest.approx(after.margin, rel=1e-3) and scores.reward_accuracy == after.reward_accuracy


def test_full_reward_model_saves_a_sequence_classifier(one_thread, tiny_model, train_pairs, held_out_pairs, tmp_path):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "rm"
    rows = [{**row, "margin": 0.5} for row in train_pairs]  # TRL's margin column: chosen must win by at least this
    assert train_rm(tiny_model, write_jsonl(rows, tmp_path / "pairs.jsonl"), out, "full") == 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    after = reward_model_scores(model, template_for(tiny_model), held_out_pairs)
    assert after.reward_accuracy >= MIN_ACCURACY and after.margin > 1.0, after


def test_rm_rows_need_a_pair_and_a_numeric_margin(tiny_model):
    from omni_plugin_dpo.encoding import encode_preference_rows

    template = template_for(tiny_model)
    pair = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}]}
    with pytest.raises(DataError, match="`rejected_response`") as caught:
        encode_preference_rows(template, [Row(pair, "rm.jsonl", 3)], method="rm", shape="conversations")
    assert "rm.jsonl:3" in str(caught.value)
    bad = Row({**pair, "rejected_response": "B", "margin": "big"}, "rm.jsonl", 4)
    with pytest.raises(DataError, match="`margin` must be a number"):
        encode_preference_rows(template, [bad], method="rm", shape="conversations")
    (feature,) = encode_preference_rows(
        template, [{**pair, "rejected_response": "B"}], method="rm", shape="conversations"
    )
    # whole conversations, differing only in the answer
    assert (
        feature["chosen_ids"][:-3] == feature["rejected_ids"][:-3] and feature["chosen_ids"] != feature["rejected_ids"]
    )


def test_rm_help_shows_its_options(omni_cli):
    result = omni_cli("rlhf", "--rlhf_type", "rm", "--help")
    assert result.returncode == 0, result.stderr
    assert (
        "algorithm 'rm' options (omni-plugin-dpo)" in result.stdout and "--center-rewards-coefficient" in result.stdout
    )
