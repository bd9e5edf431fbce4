"""The pieces around TRL: reward columns from omni's rows, metric labels, DAPO's group swap, and the pt
engine generating with an already-loaded model."""

from __future__ import annotations

import torch
from omni.api import Row
from omni_plugin_grpo.columns import ROW_INDEX, RowColumnsReward, prompt_messages, reward_labels
from omni_plugin_grpo.rewards.resolve import WeightedReward
from omni_plugin_grpo.trainer import _replace_groups


def test_rewards_get_the_rows_columns_media_included_and_their_prompts():
    rows = [
        Row(
            {
                "messages": [{"role": "user", "content": "<image>2+2?"}, {"role": "assistant", "content": "4"}],
                "solution": "4",
                "images": ["a.png"],
            },
            "d.jsonl",
            1,
        ),
        Row({"messages": [{"role": "user", "content": "3+3?"}], "solution": "6"}, "d.jsonl", 2),
    ]
    seen = {}

    def judge(prompts, completions, solution, images, completion_ids, **columns):
        seen.update(prompts=prompts, solution=solution, images=images, ids=completion_ids, rest=sorted(columns))
        return [float(c == s) for c, s in zip(completions, solution, strict=True)]

    reward = RowColumnsReward(WeightedReward("judge", judge), rows)
    scores = reward(
        ["p"] * 3, ["4", "5", "6"], **{ROW_INDEX: [0, 0, 1]}, completion_ids=[[1], [2], [3]], log_extra=None
    )
    assert scores == [1.0, 0.0, 1.0]
    assert seen["solution"] == ["4", "4", "6"] and seen["images"] == [["a.png"], ["a.png"], None]
    assert seen["prompts"][0] == [{"role": "user", "content": "<image>2+2?"}]  # the reference answer left out
    assert seen["ids"] == [[1], [2], [3]] and seen["rest"] == ["log_extra"]
    assert reward.__name__ == "judge"
    assert prompt_messages(rows[1]) == rows[1]["messages"]


def test_metric_labels_shorten_file_rewards_unless_ambiguous():
    assert reward_labels(["accuracy", "r.py:brevity"]) == ["accuracy", "brevity"]
    assert reward_labels(["a.py:f", "b.py:f", "format"]) == ["a.py:f", "b.py:f", "format"]


def test_replace_groups_repads():
    pad = 0
    output = {
        "prompt_ids": torch.tensor([[5, 6], [5, 6], [7, 8], [7, 8]]),
        "prompt_mask": torch.ones(4, 2, dtype=torch.long),
        "completion_ids": torch.tensor([[1, 0], [1, 1], [2, 0], [2, 0]]),
        "completion_mask": torch.tensor([[1, 0], [1, 1], [1, 0], [1, 0]]),
        "advantages": torch.tensor([0.0, 0.0, 1.0, -1.0]),
        "num_items_in_batch": torch.tensor(5),
    }
    extra = {
        "prompt_ids": torch.tensor([[9, 9, 9], [9, 9, 9]]),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.tensor([[3, 3, 3], [3, 0, 0]]),
        "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
        "advantages": torch.tensor([0.5, -0.5]),
        "num_items_in_batch": torch.tensor(4),
    }
    merged = _replace_groups(output, extra, [(0, 0)], size=2, pad_id=pad)
    assert merged["prompt_ids"].tolist() == [[9, 9, 9], [9, 9, 9], [0, 7, 8], [0, 7, 8]]  # prompts pad on the left
    assert merged["prompt_mask"].tolist()[2] == [0, 1, 1]
    assert merged["completion_ids"].tolist() == [[3, 3, 3], [3, 0, 0], [2, 0, 0], [2, 0, 0]]
    assert merged["advantages"].tolist() == [0.5, -0.5, 1.0, -1.0]
    assert "num_items_in_batch" not in merged  # the trainer recounts it over every process


def test_replace_groups_touches_only_this_processs_part_of_the_batch():
    # Two groups of 2 split over two processes (this one holds samples 2-3: group 1); the whole fresh batch
    # has two groups, and group 1 is replaced by fresh group 1 while the pair for group 0 is another's.
    output = {"completion_ids": torch.tensor([[2], [3]]), "advantages": torch.tensor([0.0, 0.0]), "media": ["a", "b"]}
    extra = {
        "completion_ids": torch.tensor([[4], [5], [6], [7]]),
        "advantages": torch.tensor([1.0, -1.0, 2.0, -2.0]),
        "media": ["w", "x", "y", "z"],
    }
    merged = _replace_groups(output, extra, [(0, 0), (1, 1)], size=2, pad_id=0, offset=2)
    assert merged["completion_ids"].tolist() == [[6], [7]]
    assert merged["advantages"].tolist() == [2.0, -2.0]
    assert merged["media"] == ["y", "z"]


def test_pt_engine_from_model_generates_with_the_very_model_it_was_given(tiny_model):
    from omni.api import GenerationConfig, InferRequest, ModelOptions, PtEngine, get_registry, load_model
    from omni.template import get_template

    loaded = load_model(ModelOptions(model=str(tiny_model)), get_registry())
    template = get_template(None, loaded.processor, model_spec=loaded.spec)
    engine = PtEngine.from_model(loaded.model, loaded.tokenizer, template)
    request = InferRequest(
        row={"messages": [{"role": "user", "content": "hello"}]}, generation=GenerationConfig(max_new_tokens=6)
    )
    prompt = template.encode_prompt(request.row).input_ids
    first = engine.generate([request])[0].choices[0].token_ids
    direct = loaded.model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False)[0, len(prompt) :]
    assert first == direct.tolist()[: len(first)]
    # A training step changes the shared weights in place; the engine generates with them, nothing to copy.
    other = 500 if first[0] != 500 else 501
    with torch.no_grad():  # the greedy first token's output row, ten times over, for another token
        loaded.model.lm_head.weight[other] = loaded.model.lm_head.weight[first[0]] * 10
    engine.load_weights(loaded.model)
    assert engine.model is loaded.model
    assert engine.generate([request])[0].choices[0].token_ids[0] == other
