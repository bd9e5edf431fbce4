"""End to end on the real SmolLM2-135M-Instruct: LoRA SFT on sums raises `omni eval` accuracy on held-out sums, the
report compares base and adapter, and the benchmark curve recorded during training ends at the adapter's score."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_omni

from .conftest import write_arithmetic

HELD_OUT = 16
ANSWER_TOKENS = "12"  # "#### 42" and its end token; the base model's worked answers do not end this soon
MARGIN = 0.3  # trained accuracy at least this far above the base model's


@pytest.mark.slow
def test_lora_on_sums_raises_held_out_accuracy_and_records_the_curve(smollm2, tmp_path):
    train, held_out = write_arithmetic(tmp_path / "sums", train=160, held_out=HELD_OUT)
    run = tmp_path / "run"
    bench = f"gsm8k={held_out}"
    argv = ["sft", "--model", str(smollm2), "--dataset", str(train), "--max-steps", "16", "--batch-size", "8"]
    argv += ["--learning-rate", "1e-3", "--gradient-checkpointing", "false", "--padding-free", "--logging-steps", "4"]
    argv += ["--eval-dataset", bench, "--eval-steps", "8", "--eval-max-new-tokens", ANSWER_TOKENS]
    argv += ["--metric-for-best-model", "gsm8k_accuracy", "--save-strategy", "no", "--output-dir", str(run)]
    done = run_omni(*argv, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]

    report = tmp_path / "report"
    argv = ["eval", "--adapters", f"sums={run}", "--eval-dataset", bench, "--max-new-tokens", ANSWER_TOKENS]
    done = run_omni(*argv, "--eval-output-dir", str(report), timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((report / "summary.json").read_text())["results"]
    base, trained = results["base"]["gsm8k"], results["sums"]["gsm8k"]
    assert base["count"] == trained["count"] == HELD_OUT
    assert trained["score"] >= base["score"] + MARGIN, (base["score"], trained["score"])
    page = (report / "report.html").read_text()
    assert "base" in page and "sums" in page and "data:image/png;base64," in page
    assert (report / "report.png").read_bytes().startswith(b"\x89PNG")
    lines = (report / "answers" / "sums" / "gsm8k.jsonl").read_text().splitlines()
    assert len(lines) == HELD_OUT and {"answer", "extracted", "accuracy"} <= set(json.loads(lines[0]))

    # During training: scored at steps 8 and 16 (the end), the last on the very weights the adapter saved.
    records = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    curve = {r["step"]: r["eval_gsm8k_accuracy"] for r in records if "eval_gsm8k_accuracy" in r}
    assert sorted(curve) == [8, 16]
    assert abs(curve[16] - trained["score"]) <= 1 / HELD_OUT  # at most one question apart (batched float sums)
    state = json.loads((run / "all_results.json").read_text()) if (run / "all_results.json").exists() else {}
    assert "train_loss" in state
    assert (run / "loss.png").read_bytes().startswith(b"\x89PNG")
