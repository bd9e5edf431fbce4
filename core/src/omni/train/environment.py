"""RL environments: what answers a model's turn in a multi-turn rollout (a tool's result, a game's next state).

An environment plugin registers an `omni.registry.EnvironmentSpec` whose `impl` names an `Environment` subclass;
GRPO-style algorithms build one instance per rollout, show the model its `tools` through the template, and call
`step` with each of the model's turns, parsed by the template's tool parser, until the episode ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omni.template.tools import ParsedAnswer


@dataclass(frozen=True)
class EnvironmentStep:
    """What an environment answers to one model turn.

    `messages`: the observation, as messages in the messages format (usually ``tool`` messages, one per call,
    in the order of the calls), rendered by the template after the model's turn; `reward`: a score this step
    earns (added up over the episode, None for none); `done`: the episode ends after this step.
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    reward: float | None = None
    done: bool = False


class Environment:
    """One episode's environment. Built as ``cls(options)`` (the spec's options instance, None without options)
    for every rollout, then `reset` with the row the prompt comes from.

    `tools` are the OpenAI function definitions shown to the model when the row has no ``tools`` column.
    """

    tools: list[dict[str, Any]] = []

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def reset(self, row: dict[str, Any]) -> None:
        """Start an episode for `row` (its messages and columns)."""

    def step(self, answer: ParsedAnswer) -> EnvironmentStep:
        """Answer the model's turn: `answer` is what it wrote, split by the template's parser into text and
        `tool_calls`. A turn without calls ends the episode unless the returned step has messages."""
        raise NotImplementedError
