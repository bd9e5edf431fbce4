"""`--reward-model PATH` (ms-swift's `--reward_model`): a reward model scores GRPO completions.

The slow test trains a reward model with `omni rlhf --algo rm` (omni-plugin-dpo) to prefer answers made of
words over random tokens, then trains a tiny random policy with it as the GRPO reward: the policy's mean score
from the reward model rises.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from omni.api import OmniError, PromptEncoder, get_registry
from omni.cli.main import main

from tests.token_task import prompt_rows


def reward_model(tiny_model: Path, folder: Path, labels: int = 1) -> Path:
    """The tiny model with a fresh score head (`labels` scores), saved as a sequence-classification checkpoint."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=labels)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    return folder


def test_scores_each_conversation_as_the_reward_models_template_renders_it(one_thread, tiny_model, tmp_path):
    import torch
    from omni_plugin_grpo.rewards.reward_model import RewardModelReward

    path = reward_model(tiny_model, tmp_path / "rm")
    registry = get_registry()
    reward = RewardModelReward(str(path), registry, batch_size=4)  # 5 completions: a padded batch, then one row
    prompts = [[{"role": "user", "content": f"write something, number {i}"}] for i in range(5)]
    completions = ["a", "the red dog runs far away", "", "blue", [{"role": "assistant", "content": "ok then"}]]
    scores = reward(prompts, completions)

    template = PromptEncoder.load(str(path), registry=registry).template
    with torch.no_grad():
        for prompt, completion, score in zip(prompts, completions, scores, strict=True):
            answer = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
            ids = template.encode({"messages": [*prompt, *answer]}).input_ids
            alone = reward.model(input_ids=torch.tensor([ids])).logits[0, 0].item()
            assert score == pytest.approx(alone, abs=1e-5)
    assert len(set(scores)) == 5


def test_weights_cover_the_reward_funcs_then_the_reward_models(tiny_model, tmp_path):
    from omni_plugin_grpo.rewards import resolve_rewards

    with pytest.raises(
        OmniError, match=r"--reward-weights has 1 value\(s\) but --reward-funcs and --reward-model name 2"
    ):
        resolve_rewards(["length"], [1.0], get_registry(), reward_models=[str(tmp_path / "rm")])


def test_a_classifier_with_several_scores_is_refused(one_thread, tiny_model, tmp_path):
    from omni_plugin_grpo.rewards.reward_model import RewardModelReward

    path = reward_model(tiny_model, tmp_path / "classifier", labels=3)
    with pytest.raises(OmniError, match="gives 3 scores per sequence; a reward model gives one"):
        RewardModelReward(str(path), get_registry())


def test_a_causal_lm_is_not_taken_for_a_reward_model(tiny_model):
    from omni_plugin_grpo.rewards.reward_model import RewardModelReward

    # Loaded with a score head it would get a fresh, untrained one and score at random.
    with pytest.raises(OmniError, match="is not a reward model .* train one with omni rlhf --algo rm"):
        RewardModelReward(str(tiny_model), get_registry())


def word_pairs(tiny_model: Path, count: int) -> list[dict]:
    """Prompts of the token task, answered by 8 word tokens (chosen) or 8 other tokens (rejected)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pieces = {i: tokenizer.decode([i]) for i in range(1000)}  # the tiny tokenizer's ordinary tokens
    words = [i for i, p in pieces.items() if p.startswith(" ") and p.strip().isalpha() and len(p.strip()) >= 3]
    others = sorted(set(pieces) - set(words))
    rng = random.Random(0)
    return [
        {
            "messages": [*row["messages"], {"role": "assistant", "content": tokenizer.decode(rng.choices(words, k=8))}],
            "rejected_response": tokenizer.decode(rng.choices(others, k=8)),
        }
        for row in prompt_rows(count)
    ]


@pytest.mark.slow
def test_a_trained_reward_model_drives_grpo(tiny_model, token_task, tmp_path):
    pytest.importorskip("omni_plugin_dpo")
    pytest.importorskip("omni_plugin_lora")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in word_pairs(tiny_model, 128)))
    rm = tmp_path / "rm"
    train = ["rlhf", "--rlhf_type", "rm", "--model", str(tiny_model), "--dataset", str(pairs), "--output-dir", str(rm)]
    train += ["--tuner", "lora", "--max-steps", "40", "--learning-rate", "5e-3", "--per-device-train-batch-size", "8"]
    train += [
        "--lr-scheduler-type",
        "constant",
        "--warmup-ratio",
        "0",
        "--save-strategy",
        "no",
        "--logging-steps",
        "10",
    ]
    assert main(train) == 0
    assert [r for r in map(json.loads, (rm / "logging.jsonl").open()) if "accuracy" in r][-1]["accuracy"] >= 0.9

    out = tmp_path / "grpo"
    # The LoRA adapter itself as the reward model (merged into its base when loaded), in ms-swift's spelling.
    policy = ["rlhf", "--algo", "grpo", "--model", str(tiny_model), "--dataset", str(token_task[0])]
    policy += ["--reward_model", str(rm), "--output-dir", str(out), "--num-generations", "8"]
    policy += ["--max-completion-length", "8", "--per-device-train-batch-size", "16", "--tuner", "full"]
    policy += ["--learning-rate", "5e-3", "--lr-scheduler-type", "constant", "--warmup-ratio", "0"]
    policy += [
        "--gradient-checkpointing",
        "false",
        "--max-steps",
        "40",
        "--logging-steps",
        "5",
        "--save-strategy",
        "no",
    ]
    assert main([*policy, "--seed", "0"]) == 0
    curve = [r["rewards/rm/mean"] for r in map(json.loads, (out / "logging.jsonl").open()) if "rewards/rm/mean" in r]
    # Measured: -4.5 at step 1, about 0 by step 40 (the reward model's margin on its own pairs is about 7).
    assert max(curve[-2:]) >= curve[0] + 2.0, curve
