"""Show the mean reward and the generation/training split on omni's progress bar."""

from __future__ import annotations

from typing import Any

from omni.api import ProgressBarCallback
from transformers import TrainerCallback


class RewardOnProgressBar(TrainerCallback):
    """Appends ``reward`` and ``gen/train`` seconds to the bar's loss and lr (registered after the bar)."""

    def __init__(self, bar: ProgressBarCallback) -> None:
        self.bar = bar

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        tqdm_bar = self.bar.bar
        if tqdm_bar is None or not logs or logs.get("reward") is None:
            return
        extra = f"reward={logs['reward']:.3f}"
        if logs.get("time/generation") is not None and logs.get("time/training") is not None:
            extra += f", gen/train={logs['time/generation']:.2f}/{logs['time/training']:.2f}s"
        tqdm_bar.set_postfix_str(f"{tqdm_bar.postfix}, {extra}" if tqdm_bar.postfix else extra, refresh=False)


def with_reward_on_bar(callbacks: list[Any]) -> list[Any]:
    """`callbacks` plus a `RewardOnProgressBar` after omni's progress bar (when there is one)."""
    bar = next((c for c in callbacks if isinstance(c, ProgressBarCallback)), None)
    return [*callbacks, RewardOnProgressBar(bar)] if bar else list(callbacks)
