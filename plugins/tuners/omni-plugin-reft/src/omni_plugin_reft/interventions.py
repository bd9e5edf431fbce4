"""ReFT interventions on torch forward hooks.

An intervention edits a decoder layer's output (the residual stream) at chosen prompt positions:

    LoReFT:  h + R^T (act(W h + b) - R h)      R (r x d) with orthonormal rows
    NoReFT:  the same formula, R unconstrained

(Wu et al., "ReFT: Representation Finetuning for Language Models", 2024.) pyreft implements these on
pyvene, which pins an old transformers; here they are plain modules applied by hooks:

- a forward pre-hook on the decoder (the module holding the layers) works out, once per forward, which
  (row, position) pairs are prompt positions to edit: the first/last k tokens before each row's first
  training target (labels, published by `omni.train.trainer.current_labels`), or at inference the first
  forward's whole unpadded input. Cached decoding steps are never edited, as in pyreft.
- a forward hook on each decoder layer applies the active adapter's intervention for that layer at
  those pairs. Gradient checkpointing re-runs the layer hooks in backward; they reuse the pairs stored
  by the pre-hook, so the recomputed forward equals the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from omni.api import IGNORE_INDEX, OmniError, current_labels
from torch import nn
from transformers.activations import ACT2FN

CONTAINER = "omni_reft"  # attribute of the decoder module that holds the loaded interventions


@dataclass
class ReftConfig:
    """What one saved ReFT adapter is: written as reft_config.json next to its weights."""

    method: str  # "loreft" or "noreft"
    rank: int
    hidden_size: int
    layers: list[int]
    first: int  # leading prompt tokens edited
    last: int  # trailing prompt tokens edited
    dropout: float = 0.0
    act_fn: str = "linear"
    base_model_name_or_path: str | None = None
    format: str = field(default="omni-reft-1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> ReftConfig:
        names = {f for f in cls.__dataclass_fields__}
        missing = {"method", "rank", "hidden_size", "layers", "first", "last"} - set(data)
        if missing:
            raise OmniError(f"{where}: missing fields {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})


class ReftIntervention(nn.Module):
    """One layer's edit of hidden states: h + R^T (act(W h + b) - R h), optionally with orthonormal rows in R."""

    def __init__(self, hidden_size: int, rank: int, *, orthogonal: bool, dropout: float = 0.0, act_fn: str = "linear"):
        super().__init__()
        if not 0 < rank <= hidden_size:
            raise OmniError(f"--reft-rank {rank} must be between 1 and the hidden size {hidden_size}")
        self.rotation = nn.Parameter(nn.init.orthogonal_(torch.empty(rank, hidden_size)))
        bound = hidden_size**-0.5  # nn.Linear's default init for W and b
        self.source = nn.Parameter(torch.empty(rank, hidden_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(rank).uniform_(-bound, bound))
        if act_fn != "linear" and act_fn not in ACT2FN:
            raise OmniError(f'--reft-args act_fn {act_fn!r} is unknown; use "linear" or one of {sorted(ACT2FN)}')
        self.act = nn.Identity() if act_fn == "linear" else ACT2FN[act_fn]
        # Dropout on the edit, not on the hidden state: the frozen model's own signal is never dropped.
        self.dropout = nn.Dropout(dropout)
        if orthogonal:
            # Keeps R's rows orthonormal through training (LoReFT); R R^T = I for r <= d.
            nn.utils.parametrizations.orthogonal(self, "rotation")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = hidden.to(self.source.dtype)
        rotation = self.rotation
        target = self.act(x @ self.source.T + self.bias)
        edit = (target - x @ rotation.T) @ rotation
        return hidden + self.dropout(edit).to(hidden.dtype)

    def weights(self) -> dict[str, torch.Tensor]:
        """The materialised tensors (R as used, not its parametrisation) for saving."""
        return {"rotation": self.rotation.detach(), "source": self.source.detach(), "bias": self.bias.detach()}


class ReftAdapter(nn.Module):
    """One named adapter: an intervention per edited layer, and the prompt positions it edits."""

    def __init__(self, config: ReftConfig, *, trainable: bool) -> None:
        super().__init__()
        self.config = config
        self.interventions = nn.ModuleDict(
            {
                str(layer): ReftIntervention(
                    config.hidden_size,
                    config.rank,
                    # A loaded adapter keeps R as saved: the parametrisation only matters while it learns.
                    orthogonal=trainable and config.method == "loreft",
                    dropout=config.dropout,
                    act_fn=config.act_fn,
                )
                for layer in config.layers
            }
        )
        self.requires_grad_(trainable)

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to save, keyed ``layers.N.rotation|source|bias``."""
        return {
            f"layers.{layer}.{name}": tensor.contiguous().cpu()
            for layer, intervention in self.interventions.items()
            for name, tensor in intervention.weights().items()
        }

    def load_state(self, tensors: dict[str, torch.Tensor], where: str) -> None:
        """Copy saved tensors in; raises `OmniError` when they do not match the config."""
        expected = set(self.state())
        if set(tensors) != expected:
            raise OmniError(f"{where}: weights {sorted(set(tensors) ^ expected)[:4]} do not match reft_config.json")
        with torch.no_grad():
            for layer, intervention in self.interventions.items():
                for name in ("rotation", "source", "bias"):
                    getattr(intervention, name).copy_(tensors[f"layers.{layer}.{name}"])


class ReftInterventions(nn.Module):
    """Every ReFT adapter loaded on one model, the hooks that apply the active one, and the positions to edit."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.active: str | None = None
        self.num_layers = num_layers
        # (rows, positions) edited in the current forward; None when nothing is edited (decode steps).
        self.index: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handles: list[Any] = []

    def add(self, name: str, adapter: ReftAdapter) -> None:
        if name in self.adapters:
            raise OmniError(f"a ReFT adapter named {name!r} is already loaded; name them apart with NAME=DIR")
        self.adapters[name] = adapter

    def current(self) -> ReftAdapter | None:
        return self.adapters[self.active] if self.active is not None else None

    def hook(self, decoder: nn.Module, layers: nn.ModuleList) -> None:
        """Register the pre-hook on `decoder` and a forward hook on every layer of `layers`."""
        self._handles.append(decoder.register_forward_pre_hook(self._locate, with_kwargs=True))
        for number, layer in enumerate(layers):
            self._handles.append(layer.register_forward_hook(self._edit_hook(str(number))))

    def _locate(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        """Find the (row, position) pairs the active adapter edits in this forward."""
        adapter = self.current()
        self.index = None
        if adapter is None:
            return
        cache = kwargs.get("past_key_values")
        if cache is not None and cache.get_seq_length() > 0:
            return  # a decoding step: only the prompt (the first forward) is edited
        embeds = kwargs.get("inputs_embeds")
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = ids.shape if ids is not None else embeds.shape[:2]
        device = (ids if ids is not None else embeds).device
        labels = current_labels.get()
        if labels is None and module.training:
            raise OmniError(
                "--tuner reft trains through omni sft and omni pt only: they tell each row's prompt from its answer; "
                "this algorithm does not"
            )
        mask = prompt_mask(
            shape,
            first=adapter.config.first,
            last=adapter.config.last,
            attention_mask=kwargs.get("attention_mask"),
            position_ids=kwargs.get("position_ids"),
            labels=labels,
            device=device,
        )
        self.index = mask.nonzero(as_tuple=True)

    def _edit_hook(self, layer: str):
        def edit(module: nn.Module, args: tuple, output: Any) -> Any:
            adapter = self.current()
            if self.index is None or adapter is None or layer not in adapter.interventions:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            rows, cols = self.index
            edited = hidden.index_put((rows, cols), adapter.interventions[layer](hidden[rows, cols]))
            return (edited, *output[1:]) if isinstance(output, tuple) else edited

        return edit


def prompt_mask(
    shape: torch.Size | tuple[int, int],
    *,
    first: int,
    last: int,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Boolean (batch, seq) mask of the positions to edit: each prompt's first `first` and last `last` tokens.

    A row's prompt runs from its first real token to the token before its first training target
    (`labels` != IGNORE_INDEX), or to its last real token when there are no labels (a generation prompt,
    left- or right-padded). A padding-free row (one row whose `position_ids` restart at 0) holds several
    sequences; each has its own prompt.
    """
    batch, width = shape
    positions = torch.arange(width, device=device)
    if position_ids is not None and batch == 1 and labels is not None and int((position_ids[0] == 0).sum()) > 1:
        return _packed_prompt_mask(position_ids[0].to(device), labels[0].to(device), first, last)[None]
    real = attention_mask.to(device).bool() if attention_mask is not None and attention_mask.dim() == 2 else None
    if real is None:
        real = torch.ones((batch, width), dtype=torch.bool, device=device)
    start = torch.where(real.any(1), real.int().argmax(1), width)
    if labels is not None:
        targets = labels.to(device) != IGNORE_INDEX
        end = torch.where(targets.any(1), targets.int().argmax(1), width)
    else:
        end = width - real.flip(1).int().argmax(1)
    return _span_mask(positions[None], start[:, None], end[:, None], first, last)


def _span_mask(positions: torch.Tensor, start: torch.Tensor, end: torch.Tensor, first: int, last: int) -> torch.Tensor:
    inside = (positions >= start) & (positions < end)
    return inside & ((positions - start < first) | (end - 1 - positions < last))


def _packed_prompt_mask(position_ids: torch.Tensor, labels: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """`prompt_mask` for one padding-free row: every sequence (position_ids restarting at 0) separately."""
    width = position_ids.shape[0]
    positions = torch.arange(width, device=position_ids.device)
    starts = (position_ids == 0).nonzero().flatten().tolist()
    mask = torch.zeros(width, dtype=torch.bool, device=position_ids.device)
    for start, stop in zip(starts, [*starts[1:], width], strict=True):
        targets = (labels[start:stop] != IGNORE_INDEX).nonzero().flatten()
        end = start + int(targets[0]) if len(targets) else stop
        mask |= _span_mask(positions, torch.tensor(start), torch.tensor(end), first, last)
    return mask


def decoder_layers(model: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """The module that runs the decoder layers (e.g. LlamaModel) and the layers, found inside any wrapper."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if config is not None else None
    count = getattr(text_config, "num_hidden_layers", None)
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0 and (count is None or len(layers) == count):
            return module, layers
    raise OmniError(f"--tuner reft: cannot find the decoder layers of {type(model).__name__}")


def hidden_size(model: nn.Module) -> int:
    return int(model.config.get_text_config().hidden_size)


def find_interventions(model: nn.Module) -> ReftInterventions | None:
    """The `ReftInterventions` attached to `model` (through any wrapper such as peft's), or None."""
    for module in model.modules():
        if isinstance(module, ReftInterventions):
            return module
    return None


def attach(model: nn.Module) -> ReftInterventions:
    """The model's `ReftInterventions`, created and hooked on first use.

    It is registered as a submodule of the decoder, so it follows the model across devices and its
    parameters are the model's: the Trainer's optimizer and checkpoints include them.
    """
    existing = find_interventions(model)
    if existing is not None:
        return existing
    decoder, layers = decoder_layers(model)
    container = ReftInterventions(len(layers))
    decoder.add_module(CONTAINER, container)
    container.hook(decoder, layers)
    return container


def resolve_layers(requested: list[int], num_layers: int) -> list[int]:
    """--reft-layers as sorted 0-based indices (negative ones count from the end); all layers when empty."""
    if not requested:
        return list(range(num_layers))
    resolved = []
    for layer in requested:
        if not -num_layers <= layer < num_layers:
            raise OmniError(f"--reft-layers {layer}: the model has {num_layers} layers (0 to {num_layers - 1})")
        resolved.append(layer % num_layers)
    return sorted(set(resolved))
