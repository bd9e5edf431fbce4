"""Rollouts through omni's engine interface: the training model itself by default, an engine plugin, or an
`omni rollout` server in another process.

The trainer asks `EngineRollout` for completions of a batch of rows; it groups a prompt's consecutive
copies into one request for `n` samples; the prompt ids trained on are omni's template's (the same ids
`omni infer` uses), encoded once, and engines other than pt are given those very ids. The trainer brings the
engine up to date with the trained weights before it generates after an optimizer step.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omni.api import Engine, GenerationConfig, InferRequest, OmniError, RemoteEngine, Template, TrainingJob, log_line

from omni_plugin_grpo.options import GrpoOptions


@dataclass
class Rollouts:
    """Prompt ids and completion ids, one per sample, in the order the rows were given; `extras` are more fields
    for TRL, one value per sample (multi-turn rollouts: `env_mask` and the columns rewards get)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    extras: dict[str, list[Any]] = field(default_factory=dict)


def encode_prompts(template: Template, rows: Sequence[dict[str, Any]]) -> tuple[list[list[int]], list[bool]]:
    """Each row's prompt ids as omni's template encodes them (a trailing reference answer left out), and
    whether the prompt carries images, audio or video."""
    encoded = [template.encode_prompt(row) for row in rows]
    return [list(e.input_ids) for e in encoded], [bool(e.extras) for e in encoded]


def check_media_engine(options: GrpoOptions, rows: Sequence[dict[str, Any]], with_media: Sequence[bool]) -> None:
    """Rollouts of prompts with media run on the pt engine; say so, naming a media row, for any other."""
    if options.rollout_engine == "pt" or not any(with_media):
        return
    row = rows[with_media.index(True)]
    where = f"{getattr(row, 'source', 'row')}:{getattr(row, 'location', '?')}"
    raise OmniError(
        f"{where}: prompts with images, audio or video are rolled out by the pt engine only; --rollout-engine "
        f"{options.rollout_engine} with media is not supported yet (no multimodal model it serves was verified "
        "for GRPO weight syncing); use --rollout-engine pt"
    )


def build_engine(job: TrainingJob, options: GrpoOptions, longest_prompt: int) -> Engine:
    """The engine `--rollout-engine` names: `pt` wraps the training model (no copy); `server` attaches to the
    `omni rollout` server at `--rollout-server-url`; others are loaded from the registry with the run's model path
    and flags. All but pt follow the training weights by `load_weights`, which the trainer calls before it first
    generates and after every optimizer step."""
    name = options.rollout_engine
    if name == "pt":
        from omni.api import PtEngine

        return PtEngine.from_model(job.model, job.tokenizer, job.template)
    if name == "server":
        url = options.rollout_server_url
        api_key = options.rollout_server_api_key or os.environ.get("OMNI_API_KEY") or None
        engine = RemoteEngine.rollout_server(
            url, api_key=api_key, wait_s=options.rollout_server_timeout, registry=job.registry
        )
        log_line(f"rollout engine: the omni rollout server at {url} (serving {engine.model_name})")
        return engine
    registration = job.registry.get("engines", name)
    log_line(f"rollout engine {registration.spec.name} ({registration.distribution.name})")
    engine_options = registration.spec.default_options()
    if getattr(engine_options, "max_model_len", 0) is None:
        # Rollouts need room for the longest prompt and a full completion, not the model's whole context
        # (whose KV cache may not fit the memory an engine colocated with training gets).
        engine_options = dataclasses.replace(
            engine_options, max_model_len=longest_prompt + options.max_completion_length
        )
    return registration.spec.load()(
        job.model_path,
        options=engine_options,
        model_options=job.options,
        template_options=job.options,
        registry=job.registry,
    )


def media_token_ids(config: Any) -> frozenset[int]:
    """A multimodal model's media tokens (image/audio/video placeholders, vision and audio start markers), by
    the config fields transformers names them with (``image_token_id``, ``audio_start_token_id`` ...)."""
    found = set()
    for name, value in vars(config).items():
        if name.startswith(("image_", "video_", "audio_", "vision_")) and name.endswith(("_token_id", "_token_index")):
            if isinstance(value, int):
                found.add(value)
    return frozenset(found)


class EngineRollout:
    """Completions for GRPO batches from an omni `Engine`."""

    def __init__(
        self,
        engine: Engine,
        prompt_ids: Sequence[list[int]],
        end_token_id: int | None,
        options: GrpoOptions,
        media_tokens: frozenset[int] = frozenset(),
    ) -> None:
        self.engine = engine
        self.prompts = prompt_ids  # by row index, as `encode_prompts` gave them
        self.end_token_id = end_token_id
        self.options = options
        # A sampled media placeholder would make the training forward look for media the completion lacks.
        self.media_tokens = media_tokens

    def generate(self, row_indices: Sequence[int], rows: Sequence[dict[str, Any]]) -> Rollouts:
        """One completion per entry of `rows`; runs of the same row become one request for `n` samples."""
        runs: list[tuple[int, int]] = []  # (position of the first copy, copies)
        for i, index in enumerate(row_indices):
            if runs and row_indices[runs[-1][0]] == index:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((i, 1))
        o = self.options
        # Engines but pt get the ids trained on (those prompts have no media: `check_media_engine`), so that a
        # server started with other template flags still continues exactly these prompts.
        as_ids = o.rollout_engine != "pt"
        requests = [
            InferRequest(
                row=rows[start],  # the template leaves a trailing reference answer out of the prompt
                prompt_ids=self.prompts[row_indices[start]] if as_ids else None,
                generation=GenerationConfig(
                    max_new_tokens=o.max_completion_length,
                    temperature=o.temperature,
                    top_p=o.top_p,
                    top_k=o.top_k,
                    repetition_penalty=o.repetition_penalty,
                    n=copies,
                ),
            )
            for start, copies in runs
        ]
        responses = self.engine.generate(requests)
        prompt_ids: list[list[int]] = []
        completion_ids: list[list[int]] = []
        for (start, copies), response in zip(runs, responses, strict=True):
            prompt = self.prompts[row_indices[start]]
            for choice in response.choices[:copies]:
                prompt_ids.append(prompt)
                completion_ids.append(self.with_end_token(choice))
        return Rollouts(prompt_ids, completion_ids)

    def with_end_token(self, choice: Any) -> list[int]:
        """The completion's ids as the policy produced them: a finished completion keeps its end-of-turn
        token (engines report ids without it), so the policy learns to stop; a cut one has none. A completion
        holding a media token (a placeholder a random or drifting model may sample) ends with it: the training
        forward scores that token and feeds none of them back (see `media.whole_forward_logps`)."""
        ids = list(choice.token_ids)
        cut = next((i for i, t in enumerate(ids) if t in self.media_tokens), None)
        if cut is not None:  # kept up to and including the first media token, as a completion cut short
            return ids[: cut + 1]
        if choice.finish_reason == "stop" and self.end_token_id is not None and ids[-1:] != [self.end_token_id]:
            ids.append(self.end_token_id)
        return ids[: self.options.max_completion_length]
