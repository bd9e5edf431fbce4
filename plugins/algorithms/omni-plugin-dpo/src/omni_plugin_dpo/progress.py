"""Show the preference metrics TRL logs (reward accuracy and margin) on omni's progress bar."""

from __future__ import annotations

from typing import Any

from omni.api import ProgressBarCallback
from transformers import TrainerCallback

# (accuracy, margin) as the trainers log them: the policy methods' implicit rewards, a reward model's scores.
_LOGGED = (("rewards/accuracies", "rewards/margins"), ("accuracy", "margin"))


class RewardsOnProgressBar(TrainerCallback):
    """Appends ``acc`` and ``margin`` (rewards/accuracies and rewards/margins; a reward model's accuracy and
    margin) to the bar's loss and lr.

    Registered after `bar`, so it extends the postfix the bar has just set for the same log.
    """

    def __init__(self, bar: ProgressBarCallback) -> None:
        self.bar = bar

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        tqdm_bar = self.bar.bar
        keys = next(((acc, margin) for acc, margin in _LOGGED if acc in (logs or {})), None)
        if tqdm_bar is None or keys is None:
            return
        extra = f"acc={logs[keys[0]]:.2f}, margin={logs.get(keys[1], 0.0):.3f}"
        tqdm_bar.set_postfix_str(f"{tqdm_bar.postfix}, {extra}" if tqdm_bar.postfix else extra, refresh=False)


def with_rewards_on_bar(callbacks: list[Any]) -> list[Any]:
    """`callbacks` plus a `RewardsOnProgressBar` after omni's progress bar (when there is one)."""
    bar = next((c for c in callbacks if isinstance(c, ProgressBarCallback)), None)
    return [*callbacks, RewardsOnProgressBar(bar)] if bar else list(callbacks)
