"""ReFT end to end: `omni sft --tuner reft` learns, and `omni infer --adapters DIR` answers as the trained model did."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from omni.cli.main import main
from omni.plugins import load_plugins, using_host

from tests.helpers import COLOR_QUESTIONS, color_rows

ANSWER = "{color}"  # the colour alone: ReFT sets the first answer token directly (see _first_tokens_right)
FAST = "--gradient-checkpointing false --save-steps 1000 --torch-dtype float32".split()


def _first_tokens_right(model_dir: Path, answers: list[str], rows: list[dict]) -> int:
    """How many answers open with their row's expected first token.

    The tiny model's 1000-token vocabulary spells most colours in several pieces; ReFT edits only prompt
    positions, so the first answer token is the one it sets directly (later ones follow through attention).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    first = [tokenizer(text.strip(), add_special_tokens=False)["input_ids"][:1] for text in answers]
    expected = [tokenizer(r["messages"][-1]["content"], add_special_tokens=False)["input_ids"][:1] for r in rows]
    return sum(a == e for a, e in zip(first, expected, strict=True))


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from omni.testing.models import build_tiny_model

    # Llama's template: the generation prompt is exactly the training row's tokens before the answer,
    # so the last prompt positions are the same tokens in training and at inference.
    return build_tiny_model(
        "llama",
        tmp_path_factory.mktemp("tiny-llama"),
        initializer_range=0.1,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
    )


@pytest.fixture(scope="module")
def trained(model_dir, tmp_path_factory) -> Path:
    """`omni sft --tuner reft` on colours asked four ways, a quarter of the rows held out."""
    work = tmp_path_factory.mktemp("reft-sft")
    rows = color_rows(answer=ANSWER)
    random.Random(0).shuffle(rows)
    data = _write(work / "colors.jsonl", rows)
    out = work / "run"
    argv = ["sft", "--model", str(model_dir), "--dataset", str(data), "--tuner", "reft", "--reft-positions", "f1+l3"]
    argv += "--learning-rate 2e-2 --epochs 25 --batch-size 6 --val-split-ratio 0.25 --eval-steps 10".split()
    argv += ["--per-device-eval-batch-size", "8", "--logging-steps", "10", "--output-dir", str(out), *FAST]
    with using_host(load_plugins({"OMNI_PLUGINS": "reft,llama"})):
        assert main(argv) == 0
    return out


def test_sft_learns_and_saves_only_the_interventions(trained):
    logs = [json.loads(line) for line in (trained / "logging.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in logs if "loss" in r]
    evals = [r["eval_loss"] for r in logs if "eval_loss" in r]
    assert train[-1] < train[0] - 2.0
    assert evals[-1] < evals[0] - 1.5  # held-out phrasings improve too
    args = json.loads((trained / "args.json").read_text())
    assert args["tuner"] == "reft" and args["plugin_options"]["tuner"][0]["reft_positions"] == "f1+l3"
    config = json.loads((trained / "reft_config.json").read_text())
    assert (
        config["method"] == "loreft"
        and config["layers"] == [0, 1, 2, 3]
        and (config["first"], config["last"]) == (1, 3)
    )
    assert (trained / "reft_model.safetensors").stat().st_size < 20_000  # 4 x (2 x 4 x 128 + 4) floats
    assert not (trained / "config.json").exists() and not (trained / "model.safetensors").exists()


def test_infer_with_the_saved_adapter_answers_the_trained_colors(omni_cli, model_dir, trained, tmp_path):
    rows = _write(tmp_path / "ask.jsonl", color_rows(COLOR_QUESTIONS[:1], answer=ANSWER))
    out = tmp_path / "answers.jsonl"
    result = omni_cli(
        "infer", "--adapters", str(trained), "--input", str(rows), "--output", str(out), "--max-new-tokens", "6"
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    responses = [a["response"] for a in answers]
    assert _first_tokens_right(model_dir, responses, color_rows(COLOR_QUESTIONS[:1], answer=ANSWER)) >= 5, responses
    base = omni_cli(
        "infer", "--model", str(json.loads((trained / "args.json").read_text())["model"]),
        "--query", COLOR_QUESTIONS[0].format("apple"), "--max-new-tokens", "6",
    )  # fmt: skip
    assert base.returncode == 0 and base.stdout.strip() != "red"


def test_answers_after_save_and_load_equal_the_trained_model_in_process(omni_cli, model_dir, tmp_path):
    """Train in this process, answer greedily, save; `omni infer --adapters` must give the same answers."""
    from omni.api import ModelOptions, TemplateCliOptions, get_registry, load_model
    from omni.template import get_template
    from omni.train.trainer import causal_lm_loss
    from omni_plugin_reft.options import ReftOptions
    from omni_plugin_reft.tuner import ReftTuner

    registry = get_registry()
    loaded = load_model(ModelOptions(model=str(model_dir), torch_dtype="float32"), registry)
    template = get_template(
        None, loaded.processor, TemplateCliOptions().template_options(), model_spec=loaded.spec, registry=registry
    )
    torch.manual_seed(0)
    tuner = ReftTuner(ReftOptions(reft_rank=4, reft_positions="l2", reft_intervention_type="noreft"))
    model = tuner.prepare(loaded.model).train()
    rows = color_rows(COLOR_QUESTIONS[:1], answer=ANSWER)
    encoded = [template.encode(r) for r in rows]
    width = max(len(e.input_ids) for e in encoded)
    pad = loaded.tokenizer.pad_token_id
    ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in encoded])
    labels = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in encoded])
    mask = (ids != pad).long() if pad is not None else torch.ones_like(ids)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(40):
        loss, _ = causal_lm_loss(model, {"input_ids": ids, "labels": labels, "attention_mask": mask})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    in_process = []
    end = loaded.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    for row in rows:
        prompt = torch.tensor([template.encode_prompt({"messages": row["messages"][:1]}).input_ids])
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
        tokens = out[0, prompt.shape[1] :].tolist()
        tokens = tokens[: tokens.index(end)] if end in tokens else tokens
        in_process.append(loaded.tokenizer.decode(tokens, skip_special_tokens=True))
    adapter = tmp_path / "adapter"
    tuner.save(model, adapter)

    source = _write(tmp_path / "ask.jsonl", rows)
    out = tmp_path / "answers.jsonl"
    result = omni_cli(
        "infer", "--model", str(model_dir), "--adapters", str(adapter), "--input", str(source),
        "--output", str(out), "--max-new-tokens", "6", "--max-batch-size", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    served = [json.loads(line)["response"] for line in out.read_text().splitlines()]
    assert served == in_process
    assert _first_tokens_right(model_dir, in_process, rows) >= 5, in_process


def test_merge_is_refused_with_a_clear_error(omni_cli, trained, tmp_path):
    result = omni_cli("export", "--adapters", str(trained), "--merge-lora", "--output-dir", str(tmp_path / "m"))
    assert result.returncode != 0
    assert "a ReFT adapter cannot be merged" in result.stderr and "Traceback" not in result.stderr


def test_resume_with_gradient_checkpointing_matches_an_uninterrupted_run(model_dir, tmp_path):
    """Checkpoints hold the interventions (and R's parametrization); recomputed layers re-apply the same edits."""
    import shutil

    data = _write(tmp_path / "colors.jsonl", color_rows(answer=ANSWER))
    common = ["sft", "--model", str(model_dir), "--dataset", str(data), "--tuner", "reft", "--learning-rate", "2e-2"]
    common += "--max-steps 6 --batch-size 4 --logging-steps 1 --save-steps 3 --save-total-limit 3".split()
    common += ["--gradient-checkpointing", "true", "--torch-dtype", "float32"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    with using_host(load_plugins({"OMNI_PLUGINS": "reft,llama"})):
        assert main([*common, "--output-dir", str(whole)]) == 0
        resumed.mkdir()
        shutil.copytree(whole / "checkpoint-3", resumed / "checkpoint-3")
        assert main([*common, "--output-dir", str(resumed), "--resume-from-checkpoint", "last"]) == 0

    def last_losses(out: Path) -> list[float]:
        logs = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
        return [r["loss"] for r in logs if "loss" in r][-3:]

    assert last_losses(resumed) == pytest.approx(last_losses(whole), abs=1e-5)
    from safetensors.torch import load_file

    for key, tensor in load_file(whole / "reft_model.safetensors").items():
        torch.testing.assert_close(load_file(resumed / "reft_model.safetensors")[key], tensor, atol=1e-6, rtol=0)


def test_rlhf_is_refused_before_any_model_loads(tmp_path, capsys):
    """The spec declares the algorithms ReFT trains with; a missing model proves nothing was loaded first."""
    argv = ["rlhf", "--algo", "dpo", "--tuner", "reft", "--model", str(tmp_path / "no-such-model")]
    argv += ["--dataset", str(tmp_path / "no-such-data.jsonl")]
    with using_host(load_plugins({"OMNI_PLUGINS": "reft,dpo"})):
        assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--tuner reft trains with the sft, pt algorithms only, not dpo (omni rlhf)"), err
    assert len(err) == 1 and "Traceback" not in err[0]
