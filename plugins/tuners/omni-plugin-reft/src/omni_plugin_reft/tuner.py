"""`ReftTuner`: the omni tuner contract for LoReFT and NoReFT interventions (see `omni_plugin_reft.interventions`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omni.api import OmniError, Tuner, atomic_text_file
from safetensors.torch import load_file, save_file

from omni_plugin_reft.interventions import (
    ReftAdapter,
    ReftConfig,
    attach,
    decoder_layers,
    find_interventions,
    hidden_size,
    resolve_layers,
)
from omni_plugin_reft.options import ReftOptions

CONFIG_FILE = "reft_config.json"
WEIGHTS_FILE = "reft_model.safetensors"
TRAINED = "default"  # the adapter's name while it trains


class ReftTuner(Tuner):
    """Freezes the model and adds one trainable intervention per chosen layer; saves only the interventions."""

    options: ReftOptions

    def __init__(self, options: ReftOptions | None, *, model_spec: Any = None) -> None:
        super().__init__(options or ReftOptions(), model_spec=model_spec)

    def config(self, model: Any) -> ReftConfig:
        """The `ReftConfig` these options describe for `model` (layers resolved, hidden size read)."""
        o = self.options
        first, last = o.positions()
        if not 0 <= o.reft_dropout < 1:
            raise OmniError(f"--reft-dropout {o.reft_dropout} must be in [0, 1)")
        _, layers = decoder_layers(model)
        return ReftConfig(
            method=o.method(),
            rank=o.reft_rank,
            hidden_size=hidden_size(model),
            layers=resolve_layers(list(o.reft_layers), len(layers)),
            first=first,
            last=last,
            dropout=o.reft_dropout,
            act_fn=o.extra_args().get("act_fn", "linear"),
            base_model_name_or_path=getattr(model, "name_or_path", None) or None,
        )

    def prepare(self, model: Any) -> Any:
        """Freeze every model weight and attach trainable interventions; returns the same model, hooked."""
        config = self.config(model)
        model.requires_grad_(False)
        interventions = attach(model)
        device = next(model.parameters()).device
        interventions.add(TRAINED, ReftAdapter(config, trainable=True).to(device))
        interventions.active = TRAINED
        return model

    def optimizer_param_groups(self, model: Any, learning_rate: float) -> list[dict[str, Any]] | None:
        """LoReFT's rotations train without weight decay; the other intervention weights as usual.

        torch's orthogonal parametrisation keeps the signs of its stored matrix's diagonal; decaying that
        diagonal towards zero would turn R into zeros (and switch the intervention off).
        """
        rotations, rest = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (rotations if "parametrizations.rotation" in name else rest).append(p)
        if not rotations:
            return None
        return [{"params": rest, "lr": learning_rate}, {"params": rotations, "lr": learning_rate, "weight_decay": 0.0}]

    def save(self, model: Any, output_dir: Path, *, state_dict: dict[str, Any] | None = None) -> None:
        """Write reft_config.json and reft_model.safetensors (the trained interventions only).

        The interventions are read from the model itself: ReFT never runs with sharded parameters
        (its spec says ``shardable=False``), so every process holds them whole."""
        interventions = find_interventions(model)
        adapter = interventions.current() if interventions is not None else None
        if adapter is None:
            raise OmniError("--tuner reft: the model has no active ReFT adapter to save")
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        save_file(adapter.state(), str(output_dir / WEIGHTS_FILE), metadata={"format": "pt"})
        with atomic_text_file(output_dir / CONFIG_FILE) as handle:
            handle.write(json.dumps(adapter.config.to_json(), indent=2) + "\n")

    @classmethod
    def is_saved_here(cls, path: Path) -> bool:
        """A folder written by `save` (reft_config.json)."""
        return (Path(path) / CONFIG_FILE).is_file()

    @classmethod
    def load(cls, model: Any, path: Path, *, name: str = "default") -> Any:
        """Attach the interventions saved at `path` as adapter `name` (frozen); returns `model` itself."""
        path = Path(path)
        where = str(path / CONFIG_FILE)
        try:
            data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OmniError(f"{where}: cannot read the ReFT config ({exc})") from None
        config = ReftConfig.from_json(data, where)
        size = hidden_size(model)
        _, layers = decoder_layers(model)
        if config.hidden_size != size or max(config.layers, default=-1) >= len(layers):
            raise OmniError(
                f"{where}: the adapter was trained for hidden size {config.hidden_size} and layers {config.layers}; "
                f"this model has hidden size {size} and {len(layers)} layers (base {config.base_model_name_or_path})"
            )
        adapter = ReftAdapter(config, trainable=False)
        adapter.load_state(load_file(str(path / WEIGHTS_FILE)), str(path / WEIGHTS_FILE))
        interventions = attach(model)
        interventions.add(name, adapter.to(next(model.parameters()).device))
        if interventions.active is None:
            interventions.active = name
        return model

    @classmethod
    def set_active(cls, model: Any, name: str | None) -> None:
        """Edit the next forward passes with adapter `name`, or not at all (None)."""
        interventions = find_interventions(model)
        if name is None:
            if interventions is not None:
                interventions.active = None
            return
        if interventions is None or name not in interventions.adapters:
            loaded = ", ".join(interventions.adapters) if interventions is not None else "none"
            raise OmniError(f"ReFT adapter {name!r} is not loaded (loaded: {loaded})")
        interventions.active = name

    @classmethod
    def merge(cls, model: Any) -> Any:
        """Always an error: an intervention edits hidden states at prompt positions, which no weight can hold."""
        raise OmniError(
            "a ReFT adapter cannot be merged into the model's weights: it edits hidden states at prompt positions, "
            "not weights. Serve it as an adapter instead: omni infer|serve --adapters DIR"
        )
