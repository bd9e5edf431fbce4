"""One table: each preference method's TRL trainer and config, its data shape and what it pins (light module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from omni_plugin_dpo.options import (
    CpoOptions,
    DpoOptions,
    KtoOptions,
    OrpoOptions,
    RewardModelOptions,
    SimpoOptions,
)

# paired: prompt, chosen and rejected answer ids; unpaired: prompt and one labelled answer; conversations: the
# chosen and the rejected conversation each whole (a reward model scores a sequence, not an answer after a prompt).
DataShape = Literal["paired", "unpaired", "conversations"]


@dataclass(frozen=True)
class Method:
    """A preference method as omni runs it on TRL.

    `trainer`/`config` are lazy ``"module:Class"`` references. `shape` says which rows it reads (chosen and
    rejected answers, or single answers with a desirable label) and how it takes them (`DataShape`); `reference`
    whether it compares the policy with a reference model; `fixed` are config values that define the method
    (SimPO is CPO with these); `model_head` the head it trains (a reward model's is a one-score classifier).
    `options` have a `trl_config()` giving their TRL config fields.
    """

    name: str
    description: str
    trainer: str
    config: str
    options: type
    shape: DataShape = "paired"
    reference: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    model_head: str = "causal_lm"


_CPO = "trl.experimental.cpo"
METHODS: tuple[Method, ...] = (
    Method(
        "dpo",
        "Direct Preference Optimization (loss types: sigmoid, ipo, hinge, robust, ...; RPO with --rpo-alpha)",
        trainer="trl:DPOTrainer",
        config="trl:DPOConfig",
        options=DpoOptions,
        reference=True,
    ),
    Method(
        "kto",
        "Kahneman-Tversky Optimization on unpaired rows with a boolean `label` (desirable or not)",
        trainer="trl:KTOTrainer",
        config="trl:KTOConfig",
        options=KtoOptions,
        shape="unpaired",
        reference=True,
        # KTO's KL term pairs each row with its batch neighbour, so batches must keep the dataset's order.
        fixed={"train_sampling_strategy": "sequential"},
    ),
    Method(
        "simpo",
        "SimPO: length-normalised, reference-free preference loss with a target margin",
        trainer=f"{_CPO}:CPOTrainer",
        config=f"{_CPO}:CPOConfig",
        options=SimpoOptions,
        fixed={"loss_type": "simpo", "cpo_alpha": 0.0},  # TRL's documented SimPO setting
    ),
    Method(
        "orpo",
        "ORPO: supervised loss plus an odds-ratio preference penalty, reference-free",
        trainer="trl.experimental.orpo:ORPOTrainer",
        config="trl.experimental.orpo:ORPOConfig",
        options=OrpoOptions,
    ),
    Method(
        "cpo",
        "Contrastive Preference Optimization: reference-free preference loss plus NLL on the chosen answer",
        trainer=f"{_CPO}:CPOTrainer",
        config=f"{_CPO}:CPOConfig",
        options=CpoOptions,
    ),
    Method(
        "rm",
        "reward model: a one-score head on the model, trained so chosen answers outscore rejected ones",
        trainer="trl:RewardTrainer",
        config="trl:RewardConfig",
        options=RewardModelOptions,
        shape="conversations",
        model_head="sequence_classification",
    ),
)
BY_OPTIONS: dict[type, Method] = {m.options: m for m in METHODS}
