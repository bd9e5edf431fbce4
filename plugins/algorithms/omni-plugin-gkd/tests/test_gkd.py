"""`omni rlhf --algo gkd`: a fresh student distilled from a fine-tuned teacher comes closer to it, measured as the
mean per-token KL(teacher || student) on held-out prompts' answers, computed here from the two real models."""

from __future__ import annotations

import json

import pytest
from omni.api import DataError, Row
from omni.cli.main import main

from tests.helpers import COLOR_QUESTIONS, color_rows
from tests.preference_task import template_for

HELD_OUT_QUESTION = COLOR_QUESTIONS[-1]


def mean_token_kl(teacher, student, template, rows: list[dict]) -> float:
    """KL(teacher || student) of the next-token distributions, averaged over the rows' answer tokens."""
    import torch

    total, tokens = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids = template.encode(row).input_ids
            start = len(template.encode_prompt(row).input_ids)
            inputs = torch.tensor([ids])
            t = teacher(inputs).logits[0, start - 1 : -1].log_softmax(-1)
            s = student(inputs).logits[0, start - 1 : -1].log_softmax(-1)
            total += (t.exp() * (t - s)).sum().item()
            tokens += t.shape[0]
    return total / tokens


def test_the_student_moves_towards_the_teacher(one_thread, student, teacher, tmp_path):
    from transformers import AutoModelForCausalLM

    rows = color_rows()
    train = [r for r in rows if not r["messages"][0]["content"].startswith(HELD_OUT_QUESTION.split("{")[0])]
    held_out = [r for r in rows if r not in train]
    assert len(held_out) == 6 and len(train) == 18
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in train))
    out = tmp_path / "gkd"
    # ms-swift's spellings; every step generates: the student's samples (lmbda) or else the teacher's (seq_kd).
    argv = ["rlhf", "--rlhf_type", "gkd", "--teacher_model", str(teacher), "--lmbda", "0.5", "--seq_kd", "true"]
    argv += ["--model", str(student), "--dataset", str(data), "--output-dir", str(out), "--tuner", "full"]
    argv += ["--max-steps", "30", "--learning-rate", "5e-3", "--per-device-train-batch-size", "6"]
    argv += ["--max_completion_length", "12", "--save-strategy", "no", "--logging-steps", "5"]
    argv += ["--gradient-checkpointing", "false"]
    assert main(argv) == 0

    template = template_for(student)
    the_teacher = AutoModelForCausalLM.from_pretrained(teacher).eval()
    before = mean_token_kl(the_teacher, AutoModelForCausalLM.from_pretrained(student).eval(), template, held_out)
    after = mean_token_kl(the_teacher, AutoModelForCausalLM.from_pretrained(out).eval(), template, held_out)
    # Measured: 5.72 nats per token before, 1.77 after these 30 steps.
    assert after < 0.6 * before, (before, after)
    losses = [r["loss"] for r in map(json.loads, (out / "logging.jsonl").open()) if "loss" in r]
    assert losses[-1] < losses[0], losses


def test_a_teacher_is_required_and_must_share_the_vocabulary(student, tmp_path, capsys):
    from omni.testing.models import build_tiny_model

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in color_rows()[:4]))
    argv = ["rlhf", "--algo", "gkd", "--model", str(student), "--dataset", str(data), "--tuner", "full"]
    argv += ["--output-dir", str(tmp_path / "out"), "--max-steps", "1"]
    assert main(argv) != 0
    assert "--algo gkd needs --teacher-model" in capsys.readouterr().err
    other = build_tiny_model("llama", tmp_path / "llama")
    assert main([*argv, "--teacher-model", str(other)]) != 0
    err = capsys.readouterr().err
    assert "must share one tokenizer" in err and "Traceback" not in err


def test_rows_need_an_answer_and_name_their_line(student):
    from omni_plugin_gkd.run import encode_row

    template = template_for(student)
    with pytest.raises(DataError, match="ending with an assistant answer") as caught:
        encode_row(template, Row({"messages": [{"role": "user", "content": "hi"}]}, "gkd.jsonl", 5))
    assert "gkd.jsonl:5" in str(caught.value)
    feature = encode_row(template, color_rows()[0])
    answer = [i for i, m in zip(feature["input_ids"], feature["completion_mask"], strict=True) if m]
    assert "red" in template.tokenizer.decode(answer)


def test_lmbda_out_of_range_is_one_line(student, teacher, tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in color_rows()[:4]))
    argv = ["rlhf", "--algo", "gkd", "--teacher-model", str(teacher), "--lmbda", "1.5", "--model", str(student)]
    argv += ["--dataset", str(data), "--tuner", "full", "--output-dir", str(tmp_path / "out")]
    assert main(argv) != 0
    assert "--lmbda must be between 0 and 1, got 1.5" in capsys.readouterr().err


def test_help_lists_the_ms_swift_options(omni_cli):
    result = omni_cli("rlhf", "--algo", "gkd", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for flag in ("--teacher-model", "--lmbda", "--beta", "--seq-kd", "--max-completion-length"):
        assert flag in text, flag
