"""The built-in tuners: `full` (every parameter trains) and `freeze` (only the named parts train)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.train.options import FreezeOptions
from omni.train.tuner import Tuner


class FullTuner(Tuner):
    """Trains every parameter; saves a complete transformers model."""

    def prepare(self, model: Any) -> Any:
        """Mark every parameter trainable."""
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    @classmethod
    def is_saved_here(cls, path: Path) -> bool:
        """A full model directory: config.json and weights, no adapter config."""
        p = Path(path)
        has_weights = any(p.glob("*.safetensors")) or any(p.glob("pytorch_model*.bin"))
        return (p / "config.json").is_file() and has_weights and not (p / "adapter_config.json").exists()

    @classmethod
    def load(cls, model: Any, path: Path, *, name: str = "default") -> Any:
        """Full weights are a model of their own, not an adapter: always an error that says so."""
        raise OmniError(f"{path} holds full model weights, not an adapter; use it as the model: --model {path}")

    @classmethod
    def set_active(cls, model: Any, name: str | None) -> None:
        """Nothing to switch: a fully tuned model has no adapters."""
        if name is not None:
            raise OmniError(f"adapter {name!r} is not loaded: a fully tuned model has no adapters")

    @classmethod
    def merge(cls, model: Any) -> Any:
        """Nothing to merge: the weights are already the model's."""
        return model


def _matches(name: str, patterns: list[str]) -> bool:
    # ms-swift treats these as name prefixes; globs let one pattern pick e.g. every layer's mlp.
    return any(name.startswith(p) or fnmatch.fnmatchcase(name, p) for p in patterns)


class FreezeTuner(FullTuner):
    """Trains only the parameters named by `--trainable-parts`, or all but those in `--freeze-parts`."""

    options: FreezeOptions

    def prepare(self, model: Any) -> Any:
        """Freeze and unfreeze by name; errors when the patterns leave nothing to train."""
        opts = self.options or FreezeOptions()
        if not opts.trainable_parts and not opts.freeze_parts:
            raise OmniError(
                "--tuner freeze needs --trainable-parts or --freeze-parts (parameter-name prefixes or globs)"
            )
        for name, p in model.named_parameters():
            if opts.freeze_parts:  # ms-swift order: freeze these, then unfreeze --trainable-parts
                trainable = not _matches(name, opts.freeze_parts) or _matches(name, opts.trainable_parts)
            else:
                trainable = _matches(name, opts.trainable_parts)
            p.requires_grad_(trainable)
        if not any(p.requires_grad for p in model.parameters()):
            example = next(n for n, _ in model.named_parameters())
            raise OmniError(
                f"--tuner freeze: no parameter matches --trainable-parts {opts.trainable_parts}; names look like {example!r}"
            )
        return model
