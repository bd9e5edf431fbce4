"""`omni rlhf --algo ppo` (ms-swift `--rlhf_type ppo`): GAE, the value model, LoRA's reference, checkpoints and
resuming, and what PPO refuses. Learning from a trained reward model is shown in test_reward_model.py's slow test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omni.cli.main import main
from omni_plugin_grpo.ppo import generalized_advantages, whiten


def ppo_argv(model: Path, task: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    data, rewards = task
    args = ["rlhf", "--rlhf_type", "ppo", "--model", str(model), "--dataset", str(data), "--output-dir", str(out)]
    args += ["--reward-funcs", f"{rewards}:band_share", "--max-completion-length", "8"]
    args += ["--per-device-train-batch-size", "4", "--learning-rate", "5e-3", "--gradient-checkpointing", "false"]
    args += ["--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--logging-steps", "1", "--seed", "0", *extra]
    return args


def logged(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "logging.jsonl").open()) if "ppo/score" in r]


def test_gae_on_a_worked_example():
    # Row 1: reward 1 at the last of 3 tokens, every value 0.5, lambda 0.5. Row 2: one token, then padding whose
    # rewards and values must not leak in.
    rewards = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    advantages, returns = generalized_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    # deltas: row 1 (0, 0, 0.5) -> A = (0.125, 0.25, 0.5); row 2 (1) -> A = (1); returns = A + V on the tokens.
    torch.testing.assert_close(advantages, torch.tensor([[0.125, 0.25, 0.5], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.625, 0.75, 1.0], [2.0, 0.0, 0.0]]))
    discounted, _ = generalized_advantages(rewards, torch.zeros_like(values), mask, gamma=0.5, lam=1.0)
    torch.testing.assert_close(discounted[0], torch.tensor([0.25, 0.5, 1.0]))


def test_whitening_counts_only_the_masked_tokens():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    torch.testing.assert_close(whiten(values, mask), torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        whiten(values, mask, shift_mean=False), torch.tensor([[1.0, 3.0, 0.0]]), atol=1e-4, rtol=0
    )


def test_lora_ppo_starts_at_its_reference_saves_its_value_model_and_resumes(capsys, tiny_model, token_task, tmp_path):
    pytest.importorskip("omni_plugin_lora")
    from omni.api import get_registry
    from omni_plugin_grpo.rewards import resolve_rewards

    out = tmp_path / "out"
    first = ["--tuner", "lora", "--max-steps", "2", "--num-ppo-epochs", "1", "--save-steps", "2"]
    assert main(ppo_argv(tiny_model, token_task, out, *first)) == 0
    steps = logged(out)
    # The reference is the model with its new adapter off, so the first batch is sampled at KL 0.
    assert steps[0]["ppo/kl"] == pytest.approx(0.0, abs=1e-5) and steps[0]["ppo/value_loss"] > 0
    for key in ("ppo/policy_loss", "ppo/clipfrac", "ppo/approx_kl", "ppo/value", "rewards/band_share/mean"):
        assert key in steps[-1], key
    assert (out / "adapter_model.safetensors").is_file() and not (out / "ref").exists()
    checkpoint_values = out / "checkpoint-2" / "value_model"
    assert (checkpoint_values / "config.json").is_file()
    # The value model is saved as a sequence classifier with one score: it loads as a reward model.
    (scorer,) = resolve_rewards([], None, get_registry(), reward_models=[str(out / "value_model")])
    assert len(scorer([[{"role": "user", "content": "hi"}]], ["there"])) == 1

    # Resuming takes the checkpoint's value model, and the optimizer state that holds its group.
    resume = ["--tuner", "lora", "--max-steps", "3", "--num-ppo-epochs", "1", "--resume-from-checkpoint", "last"]
    from safetensors.torch import load_file

    saved = load_file(checkpoint_values / "model.safetensors")
    capsys.readouterr()
    assert main(ppo_argv(tiny_model, token_task, out, *resume, "--save-strategy", "no")) == 0
    # Its weights alone cannot tell: the policy's backbone and a head drawn with the same seed are close to them.
    assert f"ppo: value model from {checkpoint_values}" in capsys.readouterr().err
    assert max(r["step"] for r in logged(out)) == 3
    trained_on = load_file(out / "value_model" / "model.safetensors")
    assert any(not torch.equal(saved[k], trained_on[k]) for k in saved)  # one more step trained it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--environment", "calculator"), "--algo ppo rolls out single turns for now"),
        (("--dynamic-sample", "true"), "--dynamic-sample swaps whole groups"),
    ],
)
def test_what_ppo_does_not_run_with_is_one_line(capsys, tiny_model, token_task, tmp_path, extra, message):
    assert main(ppo_argv(tiny_model, token_task, tmp_path / "out", "--max-steps", "1", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err


def test_a_value_model_adapter_without_a_score_head_is_refused(capsys, tiny_model, token_task, tmp_path):
    adapter = tmp_path / "sft-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM", "peft_type": "LORA"}))
    assert main(ppo_argv(tiny_model, token_task, tmp_path / "out", "--value-model", str(adapter))) == 2
    err = capsys.readouterr().err
    assert f"--value-model {adapter} is an adapter without a score head" in err
