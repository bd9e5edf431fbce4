"""`--reward-model PATH` (ms-swift's `--reward_model`): a reward model, or a chat model asked to grade
(`--reward-model-plugin genrm`), scores GRPO completions.

The task: answers made of 8 word tokens of the tiny tokenizer (" the", " blue" ...) are good, 8 other tokens bad.
A judge is the tiny random Qwen3 fine-tuned to reply 10 or 0; the slow test also trains a reward model with
`omni rlhf --algo rm` (omni-plugin-dpo), then trains a tiny random policy with both as GRPO rewards, and another
with PPO on the reward model: the policy's mean score from each rises.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from omni.api import OmniError, PromptEncoder, get_registry
from omni.cli.main import main
from omni_plugin_grpo.rewards.judge import judge_prompt, judged_score

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


class WordAnswers:
    """Answers of 8 tokens of the tiny tokenizer: word tokens (good) or any other ordinary tokens (bad)."""

    def __init__(self, tiny_model: Path, seed: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        pieces = {i: self.tokenizer.decode([i]) for i in range(1000)}  # the ordinary tokens (specials are >= 1000)
        self.words = [i for i, p in pieces.items() if p.startswith(" ") and p.strip().isalpha() and len(p.strip()) > 2]
        self.others = sorted(set(pieces) - set(self.words))
        self.rng = random.Random(seed)

    def __call__(self, good: bool) -> str:
        return self.tokenizer.decode(self.rng.choices(self.words if good else self.others, k=8))


def judge_rows(answers: WordAnswers, count: int) -> list[dict]:
    """Judge prompts (as the genrm reward words them) with the grade to reply: 10 for words, 0 for the rest."""
    rows = []
    for row in prompt_rows(count):
        for good in (True, False):
            question = judge_prompt(row["messages"], answers(good))
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": "10" if good else "0"},
                    ]
                }
            )
    return rows


@pytest.fixture(scope="module")
def word_judge(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen3 fine-tuned (3 epochs of 256 rows) to grade word answers 10 and others 0."""
    folder = tmp_path_factory.mktemp("judge")
    data = folder / "judge.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in judge_rows(WordAnswers(tiny_model, seed=0), 128)))
    argv = ["sft", "--model", str(tiny_model), "--dataset", str(data), "--output-dir", str(folder / "model")]
    argv += [
        "--tuner",
        "full",
        "--num-train-epochs",
        "3",
        "--learning-rate",
        "5e-3",
        "--per-device-train-batch-size",
        "16",
    ]
    argv += ["--save-strategy", "no", "--logging-steps", "10", "--gradient-checkpointing", "false"]
    assert main(argv) == 0
    return folder / "model"


def test_judge_replies_become_scores():
    assert judged_score("7") == 0.7 and judged_score(" 10 out of 10") == 1.0 and judged_score("12") == 1.0
    assert judged_score("2.5/10") == 0.25 and judged_score("no idea") is None


def test_a_generative_judge_grades_held_out_answers(one_thread, tiny_model, word_judge):
    from omni_plugin_grpo.rewards import resolve_rewards

    (judge,) = resolve_rewards(
        [], None, get_registry(), reward_models=[str(word_judge)], reward_model_plugins=["genrm"]
    )
    answers = WordAnswers(tiny_model, seed=1)  # answers the judge was not trained on
    good, bad = [answers(True) for _ in range(16)], [answers(False) for _ in range(16)]
    prompts = [[{"role": "user", "content": "write something, number 7"}]] * 32
    scores = judge(prompts, good + bad)
    # Measured by hand on 32 + 32 such answers: every word answer graded 1.0, 29 of 32 others 0.0.
    assert sum(s == 1.0 for s in scores[:16]) >= 14 and sum(s == 0.0 for s in scores[16:]) >= 14, scores
    with pytest.raises(OmniError, match="--reward-model-plugin judge: give one of default, genrm"):
        resolve_rewards([], None, get_registry(), reward_models=[str(word_judge)], reward_model_plugins=["judge"])


@pytest.mark.slow
def test_a_trained_reward_model_and_a_judge_drive_grpo_and_ppo(tiny_model, token_task, word_judge, tmp_path):
    pytest.importorskip("omni_plugin_dpo")
    pytest.importorskip("omni_plugin_lora")
    answers = WordAnswers(tiny_model, seed=2)
    pairs = [
        {
            "messages": [*row["messages"], {"role": "assistant", "content": answers(True)}],
            "rejected_response": answers(False),
        }
        for row in prompt_rows(128)
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in pairs))
    rm = tmp_path / "rm"
    train = ["rlhf", "--rlhf_type", "rm", "--model", str(tiny_model), "--dataset", str(data), "--output-dir", str(rm)]
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
    # ms-swift's spellings; the LoRA adapter itself is the reward model (merged into its base when loaded).
    policy = ["rlhf", "--algo", "grpo", "--model", str(tiny_model), "--dataset", str(token_task[0])]
    policy += ["--reward_model", str(rm), str(word_judge), "--reward_model_plugin", "default", "genrm"]
    policy += ["--output-dir", str(out), "--num-generations", "8", "--max-completion-length", "8"]
    policy += ["--per-device-train-batch-size", "16", "--tuner", "full", "--learning-rate", "5e-3"]
    policy += ["--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--gradient-checkpointing", "false"]
    policy += ["--max-steps", "40", "--logging-steps", "5", "--save-strategy", "no", "--seed", "0"]
    assert main(policy) == 0
    records = [r for r in map(json.loads, (out / "logging.jsonl").open()) if "reward" in r]
    rm_curve = [r["rewards/rm/mean"] for r in records]
    judge_curve = [r["rewards/model/mean"] for r in records]
    # Measured: reward model -4.5 at step 1, about 0 at step 40; judge 0.0 at step 1, 0.6 at step 40.
    assert max(rm_curve[-2:]) >= rm_curve[0] + 2.0, rm_curve
    assert max(judge_curve[-2:]) >= judge_curve[0] + 0.3, judge_curve

    # PPO on the same reward model, whose score head also starts the value model (ms-swift's spellings).
    out = tmp_path / "ppo"
    ppo = ["rlhf", "--rlhf_type", "ppo", "--model", str(tiny_model), "--dataset", str(token_task[0])]
    ppo += ["--reward_model", str(rm), "--output-dir", str(out), "--max-completion-length", "8"]
    ppo += ["--per-device-train-batch-size", "16", "--tuner", "full", "--learning-rate", "5e-3", "--kl_coef", "0.05"]
    ppo += ["--num_ppo_epochs", "1", "--lr-scheduler-type", "constant", "--warmup-ratio", "0"]
    ppo += ["--gradient-checkpointing", "false", "--max-steps", "40", "--logging-steps", "4", "--save-strategy", "no"]
    assert main([*ppo, "--seed", "0"]) == 0
    records = [r for r in map(json.loads, (out / "logging.jsonl").open()) if "ppo/score" in r]
    ppo_curve = [r["ppo/score"] for r in records]
    # Measured: -4.5 at step 1, 2.4 to 4.0 over steps 32-40 (KL to the reference 6-8 nats per completion by then).
    assert max(ppo_curve[-3:]) >= ppo_curve[0] + 4.0, ppo_curve
    assert (out / "value_model" / "model.safetensors").is_file()
