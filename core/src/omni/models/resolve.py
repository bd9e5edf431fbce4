"""Resolve what the user typed after `--model` to a loadable path or hub id and the model spec that handles it.

Order: the embedded model's name (or nothing; resolved as its hub id, then its config) -> an existing local folder, matched by its config.json
``architectures`` then ``model_type`` -> a hub id, matched by the specs' hub-id patterns (else by the
config transformers fetches for it). Checkpoints no plugin claims fall back to the generic `causal-lm`, or to
the generic `image-text-to-text` when their config has a vision tower.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.errors import OmniError
from omni.models.embedded import EMBEDDED_MODEL, HUB_ID, smollm2_path
from omni.registry import ModelSpec, Registration, Registry

GENERIC_MODEL = "causal-lm"
GENERIC_VISION_LANGUAGE_MODEL = "image-text-to-text"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class ResolvedModel:
    """A model to load: `path_or_id` is what the loader gets; `registration` is the spec that loads it."""

    path_or_id: str
    registration: Registration

    @property
    def spec(self) -> ModelSpec:
        """The model spec of `registration`."""
        return self.registration.spec  # type: ignore[return-value]


def resolve_model(
    name_or_path: str | None, registry: Registry, *, model_type: str | None = None, use_hf: bool = True
) -> ResolvedModel:
    """Find the checkpoint and the model spec for `name_or_path`; `model_type` forces a spec by name.

    A hub id stays an id for transformers to fetch from the Hugging Face hub (or its cache); with `use_hf` false
    it is a ModelScope id, fetched into ModelScope's cache (a cached copy is used as it is) and resolved as that
    local folder, whose spec is still matched by the id first.

    Raises `OmniError` naming the path when a local folder is missing or has no readable config.json,
    and `MissingCapabilityError` when `model_type` names no installed model family.
    """
    forced = registry.get("models", model_type) if model_type else None
    name = (name_or_path or "").strip()
    if not name or name.lower() == EMBEDDED_MODEL:
        path = smollm2_path()
        # The copy is the published SmolLM2: a plugin claiming that hub id (with its template) handles it.
        spec = forced or _hub_pattern_match(HUB_ID, registry) or match_config(read_config(path), registry)
        return ResolvedModel(str(path), spec)
    local = Path(name).expanduser()
    if local.exists():
        # Absolute, so what is saved from it (args.json, adapter configs) finds it from any folder.
        path = os.path.abspath(local)
        return ResolvedModel(path, forced or match_config(read_config(local), registry))
    if not _HUB_ID.fullmatch(name):
        raise OmniError(
            f"model {name!r} not found: it is not a local folder, not a hub id (org/name), "
            f"and not the embedded model {EMBEDDED_MODEL!r}"
        )
    if not use_hf:
        folder = modelscope_snapshot(name)
        spec = forced or _hub_pattern_match(name, registry) or match_config(read_config(Path(folder)), registry)
        return ResolvedModel(folder, spec)
    return ResolvedModel(name, forced or match_hub_id(name, registry))


def modelscope_snapshot(model_id: str) -> str:
    """The local folder of ModelScope model `model_id`: its cached snapshot, else downloaded into the cache
    (``MODELSCOPE_CACHE``). Raises `OmniError` naming what to do when modelscope is missing or the model cannot be
    fetched."""
    try:
        from modelscope import snapshot_download
    except ImportError:
        raise OmniError(
            f"--use-hf false fetches {model_id!r} from ModelScope, which needs the modelscope package: "
            "pip install modelscope"
        ) from None
    try:
        return str(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not cached yet (modelscope raises its own error types)
        pass
    try:
        return str(snapshot_download(model_id))
    except Exception as exc:
        raise OmniError(
            f"cannot fetch {model_id!r} from ModelScope ({type(exc).__name__}: {exc}); check the id and your "
            "network, or download it and pass the local folder"
        ) from None


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed config.json of a local checkpoint folder, or an `OmniError` saying what is wrong with it."""
    if not folder.is_dir():
        raise OmniError(f"model path {folder} is a file; pass the checkpoint folder that holds config.json")
    config = folder / "config.json"
    if not config.is_file():
        hint = ""
        if (folder / "adapter_config.json").is_file():
            hint = " (it holds an adapter: pass it with --adapters and the base model with --model)"
        raise OmniError(f"model path {folder} has no config.json, so it is not a transformers checkpoint{hint}")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OmniError(f"{config}: cannot read the model config ({exc})") from None
    if not isinstance(data, dict):
        raise OmniError(f"{config}: the model config must be a JSON object")
    return data


def match_config(config: dict[str, Any], registry: Registry) -> Registration:
    """The model spec for a checkpoint config: by `architectures`, then `model_type`, else `image-text-to-text`
    for a config with a vision tower (``vision_config``), else `causal-lm`."""
    specs: list[Registration] = registry.all("models")
    architectures = set(config.get("architectures") or ())
    for reg in specs:
        if architectures & set(reg.spec.architectures):  # type: ignore[attr-defined]
            return reg
    model_type = config.get("model_type")
    for reg in specs:
        if model_type and model_type in reg.spec.model_types:  # type: ignore[attr-defined]
            return reg
    if isinstance(config.get("vision_config"), dict):
        return registry.get("models", GENERIC_VISION_LANGUAGE_MODEL)
    return registry.get("models", GENERIC_MODEL)


def match_hub_id(model_id: str, registry: Registry) -> Registration:
    """The model spec for a hub id: the first spec whose hub-id patterns match, else by its fetched config."""
    return _hub_pattern_match(model_id, registry) or match_config(_hub_config(model_id), registry)


def _hub_pattern_match(model_id: str, registry: Registry) -> Registration | None:
    """The spec with the most specific hub-id pattern matching `model_id` (the most characters besides its
    wildcards), so ``meta-llama/Llama-3.2-*-Vision*`` wins over ``meta-llama/Llama-3*``; ties go to the spec
    registered first."""
    best, best_length = None, -1
    for registration in registry.all("models"):
        for pattern in registration.spec.hub_ids:  # type: ignore[attr-defined]
            length = len(pattern.replace("*", "").replace("?", ""))
            if length > best_length and fnmatch.fnmatchcase(model_id.lower(), pattern.lower()):
                best, best_length = registration, length
    return best


def _hub_config(model_id: str) -> dict[str, Any]:
    """The config of a hub model, from the local hub cache or the network."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_id).to_dict()
    except (OSError, ValueError) as exc:
        raise OmniError(
            f"cannot fetch the config of hub model {model_id!r} ({exc}); check the id and your network, "
            "or download it and pass the local folder"
        ) from None
