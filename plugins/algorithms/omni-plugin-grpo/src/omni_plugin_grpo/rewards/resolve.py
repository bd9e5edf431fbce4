"""Turn ``--reward-funcs`` and ``--reward-weights`` into the weighted reward callables a GRPO trainer calls.

A reward implementation is either a plain function ``f(prompts, completions, **columns)`` or a class:
a class is constructed with the reward's options instance (or with no arguments when its spec declares
no options), and its instances are called like the function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.api import OmniError, Registry, import_ref

from omni_plugin_grpo.rewards.user_file import is_file_reference, load_from_file

RewardFunc = Callable[..., list[float | None]]
DEFAULT_PLUGIN = "default"
# How a --reward-model scores, by ms-swift's --reward_model_plugin names: its score head, or asked as a judge.
_MODEL_PLUGINS = {
    DEFAULT_PLUGIN: "omni_plugin_grpo.rewards.reward_model:RewardModelReward",
    "genrm": "omni_plugin_grpo.rewards.judge:GenerativeJudgeReward",
}


@dataclass(frozen=True)
class WeightedReward:
    """One reward of a run: the name it was asked for by, the callable, and its weight in the total."""

    name: str
    func: RewardFunc
    weight: float = 1.0

    @property
    def __name__(self) -> str:  # trainers (TRL's among them) label reward metrics with `__name__`
        return self.name

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """The unweighted scores of the wrapped reward, one per completion."""
        scores = self.func(prompts, completions, **columns)
        if inspect.isawaitable(scores):  # an async reward (a remote judge, say) is awaited here
            import asyncio  # here: this module loads with the plugin, on every omni start

            scores = asyncio.run(scores)
        return scores


def split_reward_names(names: Sequence[str]) -> list[str]:
    """The reward names of ``--reward-funcs``, where commas separate names as well as spaces do."""
    return [part.strip() for name in names for part in name.split(",") if part.strip()]


def resolve_rewards(
    names: Sequence[str],
    weights: Sequence[float] | None,
    registry: Registry,
    options_by_name: Mapping[str, Any] | None = None,
    reward_models: Sequence[str] = (),
    reward_model_plugins: Sequence[str] = (),
) -> list[WeightedReward]:
    """The rewards `names` asks for, then the `reward_models`, in order, each ready to call and paired with its weight.

    A name is a registered reward (`omni list rewards`) or ``FILE.py:FUNCTION``; a reward model is a path (its
    metrics are labelled with the folder's name). `weights` default to 1.0 each and must otherwise match the
    rewards one to one, as ms-swift's ``--reward_weights`` do. `options_by_name` maps a registered reward's name to
    its options instance; a reward missing from it gets its options' defaults. `reward_model_plugins` say how each
    reward model scores (ms-swift's ``--reward_model_plugin``): ``default`` (its score head) or ``genrm`` (asked to
    grade, as a generative judge); none given means ``default`` for each.
    """
    refs = split_reward_names(names)
    count = len(refs) + len(reward_models)
    if weights is None:
        weights = [1.0] * count
    elif len(weights) != count:
        named = ", ".join([*refs, *reward_models]) or "none"
        flags = "--reward-funcs and --reward-model name" if reward_models else "--reward-funcs names"
        raise OmniError(
            f"--reward-weights has {len(weights)} value(s) but {flags} {count} reward(s) ({named}); "
            "give one weight per reward"
        )
    plugins = list(reward_model_plugins) or [DEFAULT_PLUGIN] * len(reward_models)
    if len(plugins) != len(reward_models) or set(plugins) - set(_MODEL_PLUGINS):
        raise OmniError(
            f"--reward-model-plugin {' '.join(plugins)}: give one of {', '.join(_MODEL_PLUGINS)} for each "
            f"--reward-model ({len(reward_models)} given)"
        )
    rewards = [
        WeightedReward(ref, _reward(ref, registry, options_by_name or {}), float(w))
        for ref, w in zip(refs, weights[: len(refs)], strict=True)
    ]
    for path, plugin, w in zip(reward_models, plugins, weights[len(refs) :], strict=True):
        scorer = import_ref(_MODEL_PLUGINS[plugin])(path, registry)  # torch: only when a reward model is asked for
        rewards.append(WeightedReward(Path(path).name or path, scorer, float(w)))
    return rewards


def _reward(ref: str, registry: Registry, options_by_name: Mapping[str, Any]) -> RewardFunc:
    if is_file_reference(ref):
        return _instantiate(load_from_file(ref), None, ref)
    registration = registry.get("rewards", ref)
    spec = registration.spec
    options = options_by_name.get(spec.name, options_by_name.get(ref))
    if options is None:
        options = spec.default_options()
    label = f"{spec.name!r} ({registration.distribution.name})"
    return _instantiate(spec.load(), options, label)


def _instantiate(impl: Any, options: Any, label: str) -> RewardFunc:
    """The reward callable of an implementation: a function as it is, a class constructed with `options`."""
    if inspect.isclass(impl):
        return impl(options) if options is not None else impl()
    if options is not None:
        raise OmniError(
            f"reward {label} declares options but its implementation is a function; make it a class taking them"
        )
    if not callable(impl):
        raise OmniError(f"reward {label}: its implementation is a {type(impl).__name__}, not a function or class")
    return impl
