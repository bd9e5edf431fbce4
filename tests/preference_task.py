"""A synthetic preference task a tiny model can learn, and an evaluation of it independent of TRL's metrics.

Every prompt asks for A or B; the chosen answer starts with "A", the rejected one with "B", each followed
by a random filler word, so an untrained model prefers the chosen answer about half the time.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORDS = ("red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird", "rock", "rain")


def preference_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` rows in omni's messages format with a `rejected_response`."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = f"Say A or B about the {rng.choice(WORDS)}."
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": f"A {rng.choice(WORDS)}"},
                ],
                "rejected_response": f"B {rng.choice(WORDS)}",
            }
        )
    return rows


def unpaired_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO rows: each pair split into a desirable and an undesirable row, alternating which comes first."""
    rows = []
    for i, pair in enumerate(pairs):
        good = {"messages": pair["messages"], "label": True}
        bad = {"messages": [*pair["messages"][:-1], {"role": "assistant", "content": pair["rejected_response"]}]}
        rows += [good, {**bad, "label": False}][:: 1 if i % 2 else -1]
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@dataclass
class PreferenceScores:
    """Held-out preference of a model.

    `reward_accuracy` is the share of rows where the policy gained more log-probability over the reference on
    the chosen answer than on the rejected one (ties count half, so an untrained policy scores 50%); `margin`
    is the mean of that gain difference; `policy_accuracy` compares the policy's own log-probs.
    """

    policy_accuracy: float
    reward_accuracy: float
    margin: float


def _answer_logps(model: Any, template: Any, rows: list[dict[str, Any]], answer_key: str) -> list[float]:
    import torch
    from omni_plugin_dpo.encoding import SEQUENCE_KEYS, TOKEN_KEYS, encode_pair

    logps = []
    side = answer_key.removesuffix("_ids")
    each_side = {f"{s}_{key}" for s in ("chosen", "rejected") for key in SEQUENCE_KEYS}
    for row in rows:
        pair = encode_pair(template, row, "eval")
        ids = pair["prompt_ids"] + pair[answer_key]
        # Rows with media: the prompt's modality tensors, and this sequence's own inputs: multimodal positions
        # (channels, 1, len), a per-token mask (1, len, ...).
        inputs = {k: torch.as_tensor(v) for k, v in pair.items() if k not in TOKEN_KEYS and k not in each_side}
        for key in SEQUENCE_KEYS:
            if f"{side}_{key}" in pair:
                value = torch.as_tensor(pair[f"{side}_{key}"])
                inputs[key] = value[:, None] if key == "position_ids" else value
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), **inputs).logits[0, :-1].float()
        targets = torch.tensor(ids[1:])
        token_logps = logits.log_softmax(-1).gather(1, targets[:, None])[:, 0]
        logps.append(token_logps[len(pair["prompt_ids"]) - 1 :].sum().item())
    return logps


def score(policy: Any, reference: Any, template: Any, rows: list[dict[str, Any]]) -> PreferenceScores:
    """Score `policy` against `reference` on held-out `rows` (both causal LMs, same tokenizer)."""
    policy.eval()
    reference.eval()
    pc, pr = (_answer_logps(policy, template, rows, k) for k in ("chosen_ids", "rejected_ids"))
    rc, rr = (_answer_logps(reference, template, rows, k) for k in ("chosen_ids", "rejected_ids"))
    margins = [(a - b) - (c - d) for a, c, b, d in zip(pc, pr, rc, rr, strict=True)]
    return PreferenceScores(
        policy_accuracy=sum(a > b for a, b in zip(pc, pr, strict=True)) / len(rows),
        reward_accuracy=sum((m > 0) + 0.5 * (m == 0) for m in margins) / len(rows),
        margin=sum(margins) / len(rows),
    )


def load_policy(base: Path, output_dir: Path) -> Any:
    """The trained model in `output_dir`: a full model, or `base` with the saved adapter applied."""
    from transformers import AutoModelForCausalLM

    if (output_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), output_dir)
    return AutoModelForCausalLM.from_pretrained(output_dir)


def template_for(model_dir: Path) -> Any:
    """omni's template for a tiny model directory, as the training run used it."""
    from omni.models.loader import load_model
    from omni.plugins import get_registry
    from omni.template import get_template
    from omni.train.options import TrainOptions

    registry = get_registry()
    loaded = load_model(TrainOptions(model=str(model_dir)), registry)
    return get_template(None, loaded.processor, None, model_spec=loaded.spec, registry=registry)


def reward_model_scores(model: Any, template: Any, rows: list[dict[str, Any]]) -> PreferenceScores:
    """Held-out preference of a reward model (a one-score sequence classifier): `reward_accuracy` is the share of
    rows whose chosen conversation scores above the rejected one, `margin` the mean score difference."""
    import torch
    from omni_plugin_dpo.encoding import encode_conversations

    model.eval()
    margins = []
    for row in rows:
        pair = encode_conversations(template, row, "eval")
        with torch.no_grad():
            chosen, rejected = (
                model(input_ids=torch.tensor([pair[side]])).logits[0, 0].item()
                for side in ("chosen_ids", "rejected_ids")
            )
        margins.append(chosen - rejected)
    accuracy = sum((m > 0) + 0.5 * (m == 0) for m in margins) / len(rows)
    return PreferenceScores(policy_accuracy=accuracy, reward_accuracy=accuracy, margin=sum(margins) / len(rows))
