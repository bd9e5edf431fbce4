"""`LoraTuner`: the omni tuner contract on peft's LoRA."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from omni.api import ModelParts, OmniError, Tuner
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.utils import ModulesToSaveWrapper

from omni_plugin_lora.options import LoraOptions

# Inits that change the base weights (they subtract the adapter's initial value from them): the final
# adapter is converted back to one that applies to the untouched base model when it is saved.
_RESIDUAL_INITS = ("pissa", "olora")


def _init_value(text: str) -> bool | str:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return lowered


def part_targets(model: Any, parts: ModelParts, adapted: Mapping[str, Collection[str] | None]) -> str:
    """A regex for peft's `target_modules` matching exactly the linear layers of `model` in the `adapted` parts.

    `adapted` maps a part (``llm``, ``vision``, ``audio``, ``aligner``) to the layer names adapted in it (e.g. the
    family's ``q_proj`` ...), or to None for every linear layer (ms-swift's ``all-linear``). The output head is
    never a target. Towers reuse the language model's layer names and aligners sit inside towers, so the regex
    spells each layer's path (layer numbers as ``\\d+``), never a bare name. Raises `OmniError` when a part has no
    such layer."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head}
    chosen: dict[str, set[str]] = {part: set() for part in adapted}
    for name in linears:
        part = parts.part_of(name)
        if part in adapted and (adapted[part] is None or name.rsplit(".", 1)[-1] in adapted[part]):
            chosen[part].add(name)
    empty = [part for part, names in chosen.items() if not names]
    if empty:
        raise OmniError(f"--tuner lora: this model has no linear layer to adapt in its {' or '.join(empty)} part")
    # One pattern per kind of layer, numbers generalised, unless it would reach another module (the activation
    # between two Linear layers of a Sequential, a layer of another part): then its layers are named one by one.
    kinds: dict[str, set[str]] = {}
    for name in set().union(*chosen.values()):
        kinds.setdefault(re.sub(r"\\\.\d+(?=\\\.|$)", lambda _: r"\.\d+", re.escape(name)), set()).add(name)
    modules = [name for name, _ in model.named_modules()]
    patterns = []
    for pattern, names in kinds.items():
        exact = {m for m in modules if re.fullmatch(pattern, m)} == names
        patterns += [pattern] if exact else [re.escape(n) for n in names]
    return f"^(?:{'|'.join(sorted(patterns))})$"


class LoraTuner(Tuner):
    """Wraps the model in a peft `PeftModel` with one trainable adapter named ``default``."""

    options: LoraOptions

    def __init__(self, options: LoraOptions | None, *, model_spec: Any = None) -> None:
        super().__init__(options or LoraOptions(), model_spec=model_spec)
        self._initial_adapter: Path | None = None
        self._part_flags: dict[str, bool] = {}

    def _derives_targets(self) -> bool:
        """Whether the targets come from the model (the family's, or every linear layer), not named by the user."""
        return list(self.options.target_modules) in ([], ["all-linear"])

    def take_part_flags(self, flags: Mapping[str, bool]) -> dict[str, bool]:
        """On a model whose spec names its parts, with targets derived from the model, LoRA takes every
        ``--freeze-*`` flag as ms-swift's ``all-linear`` does: false adapts every linear layer of that part too,
        true leaves the part out (``--freeze-llm`` takes the language model out). With ``--target-modules`` names
        the flags are left to core."""
        if getattr(self.model_spec, "parts", None) is None or not self._derives_targets():
            return dict(flags)
        self._part_flags = dict(flags)
        return {}

    def _family_targets(self) -> tuple[str, ...]:
        """The model family's default layer names, unless ``--target-modules`` was given (``all-linear``)."""
        return () if self.options.target_modules else tuple(getattr(self.model_spec, "lora_targets", ()) or ())

    def adapted_parts(self) -> dict[str, tuple[str, ...] | None]:
        """{part: layer names adapted in it, or None for all its linear layers}: the language model with the family's
        targets (every linear layer with ``all-linear`` or when the family names none), unless ``--freeze-llm``,
        and every linear layer of each part whose ``--freeze-*`` flag is false."""
        adapted = {} if self._part_flags.get("llm", False) else {"llm": self._family_targets() or None}
        adapted.update({part: None for part, freeze in self._part_flags.items() if not freeze and part != "llm"})
        if not adapted:
            raise OmniError(
                "--tuner lora: --freeze-llm leaves nothing to adapt; unfreeze a part (--freeze-vision false)"
            )
        return adapted

    def config(self, model: Any) -> LoraConfig:
        """The peft `LoraConfig` these options describe for `model` (a multimodal model's targets are found among
        its layers, so that they stay in the parts `adapted_parts` names)."""
        o = self.options
        parts = getattr(self.model_spec, "parts", None)
        targets: list[str] | str
        excluded = None
        if not self._derives_targets():
            targets = list(o.target_modules)
        elif parts is not None:
            targets = part_targets(model, parts, self.adapted_parts())
            # peft reduces a regex to bare layer names on MoE models it converts (Qwen3-Omni's thinker), which the
            # towers share: every other module is excluded by name, so the targets stay exactly these layers.
            excluded = rf"(?!{targets}).*"
        else:
            # peft takes `all-linear` only as a plain string, never inside a list
            targets = list(self._family_targets()) or "all-linear"
        return LoraConfig(
            # A reward model (`--algo rm`) is a classifier: as SEQ_CLS, peft trains and saves its new score head too.
            task_type="SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM",
            r=o.lora_rank,
            lora_alpha=o.lora_alpha,
            lora_dropout=o.lora_dropout,
            target_modules=targets,
            exclude_modules=excluded,
            modules_to_save=list(o.modules_to_save) or None,
            use_dora=o.use_dora,
            use_rslora=o.use_rslora,
            init_lora_weights=_init_value(o.init_weights),
        )

    def prepare(self, model: Any) -> Any:
        """Inject the adapter; only its weights (and --modules-to-save) train."""
        config = self.config(model)
        try:
            peft_model = get_peft_model(model, config)
        except ValueError as exc:
            raise OmniError(f"--tuner lora: {exc} (check --target-modules {config.target_modules})") from None
        init = config.init_lora_weights
        if str(init).startswith(_RESIDUAL_INITS):
            self._initial_adapter = Path(tempfile.mkdtemp(prefix="omni-lora-init-"))
            # peft's documented recipe: store the initial adapter as a plain-init one, for the conversion at save.
            peft_model.peft_config["default"].init_lora_weights = True
            peft_model.save_pretrained(self._initial_adapter)
            peft_model.peft_config["default"].init_lora_weights = init
        return peft_model

    def optimizer_param_groups(self, model: Any, learning_rate: float) -> list[dict[str, Any]] | None:
        """With LoRA+, the B matrices get ``learning_rate * lora_plus_lr_ratio``; otherwise one group (None)."""
        ratio = self.options.lora_plus_lr_ratio
        if not ratio:
            return None
        fast, rest = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (fast if "lora_B" in name or "lora_embedding_B" in name else rest).append(p)
        return [{"params": rest, "lr": learning_rate}, {"params": fast, "lr": learning_rate * ratio}]

    def save(self, model: Any, output_dir: Path, *, state_dict: dict[str, Any] | None = None) -> None:
        """Write the adapter in PEFT format (PiSSA/OLoRA converted to apply to the original base weights)."""
        if self._initial_adapter is None:
            model.save_pretrained(output_dir, state_dict=state_dict)
            return
        model.save_pretrained(
            output_dir, state_dict=state_dict, path_initial_model_for_weight_conversion=str(self._initial_adapter)
        )
        shutil.rmtree(self._initial_adapter, ignore_errors=True)
        self._initial_adapter = None

    @classmethod
    def is_saved_here(cls, path: Path) -> bool:
        """A PEFT adapter directory (``adapter_config.json``)."""
        return (Path(path) / "adapter_config.json").is_file()

    @classmethod
    def load(cls, model: Any, path: Path, *, name: str = "default") -> Any:
        """Load the adapter at `path` as `name`; a second call adds another adapter to the same base."""
        if isinstance(model, PeftModel):
            model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            return model
        return PeftModel.from_pretrained(model, str(path), adapter_name=name, is_trainable=False)

    @classmethod
    @torch.no_grad()
    def merged_weights(cls, model: Any) -> dict[str, Any] | None:
        """Base weights plus each active adapter's delta (peft's `get_delta_weight`), computed into new tensors:
        no merge/unmerge round trip that would disturb the optimizer state or gradients of a training model."""
        base = model.get_base_model() if isinstance(model, PeftModel) else model
        lora_layers = {n: m for n, m in base.named_modules() if isinstance(m, LoraLayer)}
        saved_copies = {n: m for n, m in base.named_modules() if isinstance(m, ModulesToSaveWrapper)}
        if not lora_layers and not saved_copies:
            return None
        covered = tuple(f"{name}." for name in [*lora_layers, *saved_copies])
        weights: dict[str, Any] = {}
        for name, layer in lora_layers.items():
            weights[f"{name}.weight"] = _merged_lora_weight(layer, name)
            if getattr(layer.get_base_layer(), "bias", None) is not None:
                weights[f"{name}.bias"] = layer.get_base_layer().bias.detach()
        for name, wrapper in saved_copies.items():
            active = wrapper.modules_to_save[wrapper.active_adapters[0]] if wrapper.active_adapters else None
            module = active if active is not None else wrapper.original_module
            for param_name, param in module.named_parameters():
                weights[f"{name}.{param_name}"] = param.detach()
        for name, param in base.named_parameters():
            if not name.startswith(covered):
                weights[name] = param.detach()
        return weights

    @classmethod
    def set_active(cls, model: Any, name: str | None) -> None:
        """Use adapter `name`, or the bare base model for None."""
        if name is None:
            model.base_model.disable_adapter_layers()
            return
        if name not in model.peft_config:
            raise OmniError(f"adapter {name!r} is not loaded (loaded: {', '.join(model.peft_config)})")
        model.base_model.enable_adapter_layers()
        model.set_adapter(name)

    @classmethod
    def merge(cls, model: Any) -> Any:
        """Fold the active adapter into the base weights and return the plain transformers model."""
        return model.merge_and_unload()


def _merged_lora_weight(layer: Any, name: str) -> Any:
    """The base weight plus every active adapter's delta, as a new tensor (the weight if already merged)."""
    weight = layer.get_base_layer().weight.detach()
    if layer.merged:  # peft merged the adapters into the base weight already
        return weight
    merged = weight.clone()
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if layer.use_dora.get(adapter, False):
            raise OmniError(
                f"{name}: DoRA adapters cannot be merged into an engine's weights on the fly; train with plain LoRA "
                "or merge the adapter first"
            )
        merged += layer.get_delta_weight(adapter).to(merged.dtype)
    return merged
