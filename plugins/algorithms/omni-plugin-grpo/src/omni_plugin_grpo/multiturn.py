"""Multi-turn rollouts: the model writes a turn, an environment answers it, the model goes on.

Why omni's loop and not TRL's `tools=`/`environment_factory=`: TRL runs its tool loop on completions it generates
itself (transformers or its vLLM client) and reads calls through the tokenizer's response schema, while omni's
rollouts come from omni's engines through `rollout_func` and omni's templates name their own `ToolCallParser`.
So the loop is here, and TRL's own hook for it is used for the rest: the rollout returns `env_mask` (1 on the
model's tokens, 0 on observations), which TRL multiplies into the loss mask, so observations are never trained.

A rollout's completion is the model's turns and the observations between them, as the model saw them: each
observation is the template's rendering of the environment's messages after the model's turn, up to the next
assistant opening; its ids come from rendering the whole conversation and cutting it after the end-of-turn
token that closes the model's turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from omni.api import (
    Environment,
    GenerationConfig,
    InferRequest,
    OmniError,
    ParsedAnswer,
    Template,
)

from omni_plugin_grpo.columns import prompt_messages
from omni_plugin_grpo.rollout import EngineRollout, Rollouts

FINAL_ANSWER = "final_answer"  # the content of the model's last turn, for rewards
ENVIRONMENT_REWARD = "environment_reward"  # the episode's summed step rewards (None when no step gave one)


def with_tools(row: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """`row` with the environment's `tools` when it has none of its own (its origin kept for error messages)."""
    if row.get("tools") or not tools:
        return row
    copy = row.copy()  # a Row's copy keeps its source and line
    copy["tools"] = tools
    return copy


def check_template(template: Template, environment: str) -> None:
    """An environment needs a template that writes tools into prompts and reads calls back out."""
    if not template.supports_tools or template.tool_parser is None:
        raise OmniError(
            f"--environment {environment}: the {type(template).__name__} has no tool format to show tools and read "
            "the model's calls; use a template with one (--template qwen3, --template llama3)"
        )


@dataclass
class Episode:
    """One rollout: its environment, the conversation so far, and the completion ids with their mask."""

    environment: Environment
    row: dict[str, Any]
    prompt_ids: list[int]
    messages: list[dict[str, Any]]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1: the model's token, 0: the environment's
    reward: float | None = None
    final_answer: str = ""
    done: bool = False

    def add_turn(self, ids: Sequence[int]) -> None:
        self.completion_ids += ids
        self.env_mask += [1] * len(ids)

    def add_observation(self, ids: Sequence[int]) -> None:
        self.completion_ids += ids
        self.env_mask += [0] * len(ids)


def assistant_message(answer: ParsedAnswer) -> dict[str, Any]:
    """The model's turn as a message of the conversation (calls in OpenAI's shape)."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in answer.tool_calls
        ]
    return message


def observation_ids(template: Template, episode: Episode, end_token_id: int) -> list[int]:
    """The ids the template writes after the model's last turn: the observation messages and the next assistant
    opening. The turn's own ids are the model's (ending with `end_token_id`); the rendering is cut after the
    end-of-turn token that closes it, found by counting end-of-turn tokens."""
    rendered = template.encode_prompt({**episode.row, "messages": episode.messages}).input_ids
    turns_closed = (episode.prompt_ids + episode.completion_ids).count(end_token_id)
    ends = [i for i, token in enumerate(rendered) if token == end_token_id]
    if len(ends) < turns_closed:
        raise OmniError(
            f"the {type(template).__name__} renders fewer end-of-turn tokens than the rollout holds; it cannot be "
            "used for multi-turn rollouts"
        )
    return list(rendered[ends[turns_closed - 1] + 1 :])


class EnvironmentRollout:
    """Completions of several turns: the first turn of every sample from `EngineRollout`, then, while episodes go
    on, the environment's observation and the model's next turn, up to `max_turns` model turns and
    `max_completion_length` tokens in all."""

    def __init__(
        self,
        single_turn: EngineRollout,
        template: Template,
        make_environment: Callable[[], Environment],
        max_turns: int,
        decode: Callable[[list[int]], str],
    ) -> None:
        if single_turn.end_token_id is None:
            raise OmniError("multi-turn rollouts need the model's end-of-turn token; its generation config has none")
        self.single_turn = single_turn
        self.template = template
        self.make_environment = make_environment
        self.max_turns = max_turns
        self.decode = decode
        self.end_token_id: int = single_turn.end_token_id

    @property
    def engine(self) -> Any:
        return self.single_turn.engine

    @property
    def media_tokens(self) -> frozenset[int]:
        return self.single_turn.media_tokens

    def generate(self, row_indices: Sequence[int], rows: Sequence[dict[str, Any]]) -> Rollouts:
        first = self.single_turn.generate(row_indices, rows)
        episodes = []
        for row, prompt, ids in zip(rows, first.prompt_ids, first.completion_ids, strict=True):
            environment = self.make_environment()
            environment.reset(row)
            episode = Episode(environment, row, prompt, prompt_messages(row))
            episode.add_turn(ids)
            episodes.append(episode)
        for turn in range(1, self.max_turns + 1):
            going_on = [e for e in episodes if self.observe(e, last_turn=turn == self.max_turns)]
            if not going_on:
                break
            self._next_turns(going_on)
        for episode in episodes:
            episode.completion_ids = episode.completion_ids[: self.single_turn.options.max_completion_length]
            episode.env_mask = episode.env_mask[: len(episode.completion_ids)]
        return Rollouts(
            first.prompt_ids,
            [e.completion_ids for e in episodes],
            extras={
                "env_mask": [e.env_mask for e in episodes],
                FINAL_ANSWER: [e.final_answer for e in episodes],
                ENVIRONMENT_REWARD: [e.reward for e in episodes],
            },
        )

    def observe(self, episode: Episode, *, last_turn: bool) -> bool:
        """Give the model's last turn to the environment; whether the episode goes on (then with its observation)."""
        turn = _last_turn(episode)
        finished = turn[-1:] == [self.end_token_id]
        answer = self.template.tool_parser.parse(self.decode(turn[:-1] if finished else turn))
        episode.final_answer = answer.content
        step = episode.environment.step(answer)
        if step.reward is not None:
            episode.reward = (episode.reward or 0.0) + step.reward
        room = self.single_turn.options.max_completion_length - len(episode.completion_ids)
        if step.done or not step.messages or last_turn or not finished or room <= 0:
            return False
        episode.messages = [*episode.messages, assistant_message(answer), *step.messages]
        episode.add_observation(observation_ids(self.template, episode, self.end_token_id))
        return len(episode.completion_ids) < self.single_turn.options.max_completion_length

    def _next_turns(self, episodes: list[Episode]) -> None:
        o = self.single_turn.options
        requests = [
            InferRequest(
                prompt_ids=e.prompt_ids + e.completion_ids,
                generation=GenerationConfig(
                    max_new_tokens=o.max_completion_length - len(e.completion_ids),
                    temperature=o.temperature,
                    top_p=o.top_p,
                    top_k=o.top_k,
                    repetition_penalty=o.repetition_penalty,
                ),
            )
            for e in episodes
        ]
        for episode, response in zip(episodes, self.engine.generate(requests), strict=True):
            episode.add_turn(self.single_turn.with_end_token(response.choices[0]))


def _last_turn(episode: Episode) -> list[int]:
    """The ids of the model's most recent turn (the completion's tail since the last observation)."""
    start = len(episode.env_mask)
    while start > 0 and episode.env_mask[start - 1] == 1:
        start -= 1
    return episode.completion_ids[start:]
