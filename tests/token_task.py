"""A task a tiny random model can learn by RL: write completions made of one band of token ids.

The reward is the share of a completion's `LENGTH` token slots holding a token from `TARGET_IDS`
(an end-of-turn token or a short answer leaves slots empty). A random tiny model samples almost
uniformly over its ~1,000 tokens, so it starts near len(TARGET_IDS)/1,000 and can reach 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

LENGTH = 8
TARGET_IDS = frozenset(range(100, 164))  # 64 ordinary BPE tokens of the tiny tokenizer (specials are >= 1000)


def band_share(prompts, completions, completion_ids, **columns):
    """Share of the first LENGTH completion tokens that are in TARGET_IDS."""
    return [sum(t in TARGET_IDS for t in ids[:LENGTH]) / LENGTH for ids in completion_ids]


REWARD_FILE = f'''
TARGET_IDS = frozenset(range({min(TARGET_IDS)}, {max(TARGET_IDS) + 1}))
LENGTH = {LENGTH}


def band_share(prompts, completions, completion_ids, solution, **columns):
    """Share of the first LENGTH completion tokens in TARGET_IDS; rows must carry their `solution` column."""
    assert all(s == "band" for s in solution), solution
    return [sum(t in TARGET_IDS for t in ids[:LENGTH]) / LENGTH for ids in completion_ids]
'''


def prompt_rows(count: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"write something, number {i}"}], "solution": "band"}
        for i in range(count)
    ]


def write_task(directory: Path, count: int = 32) -> tuple[Path, Path]:
    """(prompts.jsonl, rewards.py) for the CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows(count)))
    rewards = directory / "band_reward.py"
    rewards.write_text(REWARD_FILE)
    return data, rewards


def reward_curve(output_dir: Path, name: str = "band_share") -> list[tuple[int, float]]:
    """(step, mean reward) from the run's logging.jsonl."""
    curve = []
    for line in (output_dir / "logging.jsonl").read_text().splitlines():
        record = json.loads(line)
        key = f"rewards/{name}/mean"
        if key in record:
            curve.append((record["step"], record[key]))
    return curve
