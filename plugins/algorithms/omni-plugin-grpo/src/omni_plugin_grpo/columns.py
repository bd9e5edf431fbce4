"""What a reward is called with: the rows' own columns (``solution``, ``images`` ...) and their prompts.

The GRPO dataset TRL iterates holds only the rendered prompt and the row's index; everything else is read
from omni's rows when a reward is called, so any column (media, nested values) reaches rewards as it is in
the data, without a round trip through Arrow. Media paths relative to the dataset file (``images``,
``audios``, ``videos``) arrive resolved against its folder, so a reward can open them wherever it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omni.api import MediaContext

from omni_plugin_grpo.rewards.resolve import WeightedReward
from omni_plugin_grpo.rewards.user_file import is_file_reference

ROW_INDEX = "omni_row"
# Columns omni consumes itself; every other column of a row is passed to rewards.
_OWN_COLUMNS = ("messages",)
_MEDIA_COLUMNS = ("images", "audios", "videos")


def prompt_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's conversation up to the turn being generated (a trailing reference answer left out)."""
    messages = list(row.get("messages") or [])
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return messages


class RowColumnsReward:
    """Calls a reward with the rows' prompts (as messages) and columns, one value per completion."""

    def __init__(self, reward: WeightedReward, rows: Sequence[dict[str, Any]], label: str | None = None) -> None:
        self.reward = reward
        self.rows = rows
        self.__name__ = label or reward.name  # TRL labels `rewards/<name>/mean` with it

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """The wrapped reward's scores; `columns` carries TRL's extras (`completion_ids`, `trainer_state` ...)."""
        picked = [self.rows[i] for i in columns.pop(ROW_INDEX)]
        names = dict.fromkeys(k for row in picked for k in row if k not in _OWN_COLUMNS)
        row_columns = {name: [_value(row, name) for row in picked] for name in names}
        messages = [prompt_messages(row) for row in picked]
        return self.reward(messages, completions, **row_columns, **columns)


def _value(row: dict[str, Any], name: str) -> Any:
    """A column's value for rewards: media lists with relative local paths resolved, anything else as it is."""
    value = row.get(name)
    if name not in _MEDIA_COLUMNS or not isinstance(value, list):
        return value
    base = MediaContext.of_row(row).base_dir
    return [_resolved(item, base) for item in value]


def _resolved(item: Any, base: Path | None) -> Any:
    if base is None or not isinstance(item, str) or "://" in item or item.startswith("data:"):
        return item
    path = Path(item).expanduser()
    try:
        found = not path.is_absolute() and (base / path).is_file()
    except OSError:  # a name too long for a path: inline base64
        found = False
    return str(base / path) if found else item  # absolute, or not a file beside the data: as given


def reward_labels(names: Sequence[str]) -> list[str]:
    """Metric labels: a reward's name, or for ``FILE.py:NAME`` just NAME unless two rewards share it."""
    short = [name.rpartition(":")[2] if is_file_reference(name) else name for name in names]
    return [s if short.count(s) == 1 else name for s, name in zip(short, names, strict=True)]
