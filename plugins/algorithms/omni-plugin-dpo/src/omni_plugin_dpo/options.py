"""The options of each preference method, under the names TRL and the methods' papers use (light module)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from omni.api import option


@dataclass
class PreferenceOptions:
    """Options every method has; `trl_config()` gives the TRL config fields they set."""

    beta: float = option(0.1, help="preference strength (inverse temperature of the implicit reward)")

    def trl_config(self) -> dict[str, Any]:
        """Keyword arguments for the method's TRL config (omni-only fields such as `ref_model` left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "ref_model"}


@dataclass
class DpoOptions(PreferenceOptions):
    """DPO and its loss variants (TRL's DPOTrainer)."""

    loss_type: list[str] = option(
        default_factory=lambda: ["sigmoid"],
        help="DPO loss: sigmoid, ipo, hinge, robust, exo_pair, nca_pair, bco_pair, sppo_hard, aot, apo_zero, "
        "apo_down, discopop, sigmoid_norm (several are summed)",
    )
    label_smoothing: float = option(0.0, help="probability a preference label is flipped (robust, exo_pair)")
    rpo_alpha: float | None = option(None, help="RPO: add this weight times the NLL of the chosen answer")
    ref_model: str | None = option(
        None, help="reference model (path or name); default: the initial model (with LoRA, no second copy)"
    )

    def trl_config(self) -> dict[str, Any]:
        config = super().trl_config()
        rpo_alpha = config.pop("rpo_alpha")
        if rpo_alpha is not None:  # TRL >= 1.0 expresses RPO as an extra weighted "sft" loss
            config["loss_weights"] = [1.0] * len(self.loss_type) + [rpo_alpha]
            config["loss_type"] = [*self.loss_type, "sft"]
        return config


@dataclass
class KtoOptions(PreferenceOptions):
    """KTO on unpaired rows marked desirable or undesirable (TRL's KTOTrainer)."""

    loss_type: str = option("kto", help="kto, or apo_zero_unpaired")
    desirable_weight: float = option(1.0, help="weight of the desirable rows' loss")
    undesirable_weight: float = option(1.0, help="weight of the undesirable rows' loss")
    ref_model: str | None = option(
        None, help="reference model (path or name); default: the initial model (with LoRA, no second copy)"
    )


@dataclass
class CpoOptions(PreferenceOptions):
    """CPO: a reference-free preference loss plus NLL on the chosen answer (TRL's CPOTrainer)."""

    loss_type: str = option("sigmoid", help="sigmoid, hinge, ipo or alphapo")
    label_smoothing: float = option(0.0, help="conservative label smoothing of the sigmoid loss")
    cpo_alpha: float = option(1.0, help="weight of the NLL term on the chosen answer")


@dataclass
class SimpoOptions(PreferenceOptions):
    """SimPO: length-normalised reward with a target margin, no reference model (CPOTrainer, cpo_alpha=0)."""

    beta: float = option(2.0, help="reward scale (SimPO's beta; the paper uses 2.0-2.5)")
    simpo_gamma: float = option(0.5, help="target reward margin (SimPO's gamma)")
    label_smoothing: float = option(0.0, help="conservative label smoothing")


@dataclass
class OrpoOptions(PreferenceOptions):
    """ORPO: NLL plus an odds-ratio penalty, no reference model (TRL's ORPOTrainer)."""

    beta: float = option(0.1, help="weight of the odds-ratio loss (ORPO's lambda)")


@dataclass
class RewardModelOptions:
    """A reward model trained on preference pairs (TRL's RewardTrainer): -log sigmoid(score(chosen) - score(rejected))."""

    center_rewards_coefficient: float | None = option(
        None, help="weight of a penalty on the mean squared score, keeping scores centred on 0 (TRL and ms-swift)"
    )

    def trl_config(self) -> dict[str, Any]:
        """Keyword arguments for TRL's RewardConfig."""
        return dataclasses.asdict(self)
