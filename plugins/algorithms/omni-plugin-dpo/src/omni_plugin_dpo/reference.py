"""The reference model of DPO and KTO: none to load with LoRA, else the initial weights or `--ref-model`."""

from __future__ import annotations

import dataclasses
from typing import Any

from omni.api import TrainingJob, log_line
from transformers import TrainerCallback

REF_ADAPTER = "ref"  # the name TRL gives its frozen copy of a pre-existing adapter


def reference_model(job: TrainingJob, path: str | None) -> Any:
    """`--ref-model` loaded with omni's loader; None when the policy is a PEFT model (TRL computes the
    reference from the same weights, so no second copy is held); else a fresh copy of the base model."""
    from accelerate.utils import is_peft_model
    from omni.api import load_model

    if path is None and is_peft_model(job.model):
        return None
    options = dataclasses.replace(job.options, model=path or job.model_path)
    loaded = load_model(options, job.registry, for_training=True)
    log_line(f"reference model from {loaded.path}")
    loaded.model.requires_grad_(False)
    return loaded.model


def drop_reference_copy_if_exact(model: Any) -> bool:
    """Remove TRL's reference adapter when disabling the adapter gives the starting model exactly.

    A fresh LoRA or DoRA adapter computes nothing until trained (every ``lora_B`` is zero), so TRL's
    reference forward can run the base with adapters disabled: no copy in memory, no adapter matmuls.
    PiSSA/OLoRA (non-zero B, rewritten base) keep the copy. Returns whether the copy was removed.
    """
    if REF_ADAPTER not in getattr(model, "peft_config", {}):
        return False
    adapter_b = [p for name, p in model.named_parameters() if ".lora_B.default." in name]
    if not adapter_b or any(bool(p.detach().any()) for p in adapter_b):
        return False
    model.delete_adapter(REF_ADAPTER)
    model.set_adapter("default")
    return True


class DropReferenceAdapter(TrainerCallback):
    """Remove TRL's reference adapter when training ends, so only the trained adapter is saved.

    Given a PEFT model with an adapter already attached (omni's tuner attaches it), TRL keeps a frozen copy
    of that adapter as the reference. Where `drop_reference_copy_if_exact` keeps it (PiSSA and OLoRA rewrite
    the base weights), checkpoints keep the copy, so resuming still works.
    """

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        peft_config = getattr(model, "peft_config", {})
        if REF_ADAPTER in peft_config:
            model.delete_adapter(REF_ADAPTER)
