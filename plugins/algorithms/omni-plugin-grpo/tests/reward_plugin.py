"""A reward plugin as a third party would publish one: a reward class with its own options dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from omni.api import RewardSpec, hookimpl, option

OMNI_PLUGIN_API = 1


@dataclass
class BandOptions:
    """The `band` reward."""

    band_low: int = option(0, help="lowest token id that scores")
    band_high: int = option(0, help="one past the highest token id that scores")


class BandReward:
    """Share of a completion's tokens with ids in [--band-low, --band-high)."""

    def __init__(self, options: BandOptions) -> None:
        self.options = options

    def __call__(self, prompts, completions, completion_ids, **columns):
        low, high = self.options.band_low, self.options.band_high
        return [sum(low <= t < high for t in ids) / max(len(ids), 1) for ids in completion_ids]


@hookimpl
def register_rewards(register):
    """Register the `band` reward."""
    register(
        RewardSpec(
            name="band",
            description="share of completion tokens inside a band of token ids",
            impl=f"{__name__}:BandReward",
            options=BandOptions,
        )
    )
