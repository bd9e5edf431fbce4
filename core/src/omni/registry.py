"""Spec records (what a plugin offers) and the registry that holds them.

A spec is light: a frozen dataclass with a name, a description, an options dataclass and the
implementation as a lazy ``"module:attr"`` reference. Nothing heavy is imported until `Spec.load()`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omni.errors import ImplementationError, MissingCapabilityError, OmniError, raised_at

KINDS: tuple[str, ...] = (
    "models",
    "templates",
    "encoders",
    "tuners",
    "algorithms",
    "rewards",
    "quantizers",
    "engines",
    "datasets",
    "strategies",
    "callbacks",
    "benchmarks",
    "environments",
    "commands",
)


def package_dir(module: str) -> str | None:
    """The folder of `module`'s top-level package, found without importing it (None when there is none)."""
    try:
        found = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None
    return next(iter(found.submodule_search_locations or []), None) if found else None


def import_ref(ref: str) -> Any:
    """Import and return the object a ``"package.module:attr.path"`` reference names."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"implementation reference {ref!r} is not of the form 'module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Selector:
    """An option whose value names spec(s) of `kind`; their options join the command's flags.

    A command's spec selects with its own options, and so can any selected spec with its options (an
    algorithm selecting rewards), to any depth. Several names may be given as a list or separated by commas.
    Values matching the regex `external` in full are not registry names (a user's ``FILE.py:NAME``, say):
    they are left to the spec that reads the option.
    """

    option: str
    kind: str
    external: str | None = None


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What every registered capability has. Subclasses add kind-specific fields."""

    kind: ClassVar[str] = ""

    name: str
    description: str
    impl: str
    options: type | None = None
    aliases: tuple[str, ...] = ()
    overrides: str | None = None  # a distribution whose registration of this name this one replaces
    selects: tuple[Selector, ...] = ()  # options (of `options`) naming further specs whose options join the CLI

    def __post_init__(self) -> None:
        if self.options is not None and not dataclasses.is_dataclass(self.options):
            raise TypeError(f"{self.kind} {self.name!r}: options must be a dataclass, got {self.options!r}")
        if ":" not in self.impl:
            raise TypeError(f"{self.kind} {self.name!r}: impl must be a 'module:attr' reference")
        fields = {f.name for f in dataclasses.fields(self.options)} if self.options is not None else set()
        for selector in self.selects:
            if selector.option not in fields:
                raise TypeError(
                    f"{self.kind} {self.name!r}: selects {selector.option!r}, which is not one of its options"
                )

    def load(self) -> Any:
        """Import the implementation (this is where heavy libraries may get imported).

        Raises `ImplementationError` naming this spec, the reference and where importing it failed."""
        try:
            return import_ref(self.impl)
        except Exception as exc:  # whatever a plugin's module raises, the user needs to know whose it is
            raise ImplementationError(
                self, f"{type(exc).__name__}: {exc}", raised_at(exc, within=package_dir(self.impl.partition(":")[0]))
            ) from exc

    def default_options(self) -> Any:
        """An instance of the options dataclass with its defaults (None when the spec has no options)."""
        return self.options() if self.options is not None else None


@dataclass(frozen=True)
class ModelParts:
    """The parts of a multimodal model, as module-name prefixes of the model its loader returns.

    `--freeze-llm`, `--freeze-vision`, `--freeze-audio` and `--freeze-aligner` act on these. A parameter
    belongs to the part with the longest matching prefix, so an aligner inside a tower (``visual.merger``
    inside ``visual``) is told apart from it.
    """

    llm: tuple[str, ...] = ()  # the language model, its embeddings and output head
    vision: tuple[str, ...] = ()  # the vision tower (images and video)
    audio: tuple[str, ...] = ()  # the audio tower
    aligner: tuple[str, ...] = ()  # projections from the towers into the language model (mergers)

    def part_of(self, name: str) -> str | None:
        """The part a parameter or module name belongs to, or None when no part claims it.

        Names may carry peft's wrapper prefix (``base_model.model.``)."""
        name = name.removeprefix(_PEFT_PREFIX)
        best, length = None, -1
        for part in ("llm", "vision", "audio", "aligner"):
            for prefix in getattr(self, part):
                if len(prefix) > length and (name == prefix or name.startswith(prefix + ".")):
                    best, length = part, len(prefix)
        return best


_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True, kw_only=True)
class ModelSpec(Spec):
    """A model family. `impl` names a loader: ``load(path_or_id, *, model_options, load_options) -> (model, processor)``."""

    kind: ClassVar[str] = "models"
    architectures: tuple[str, ...] = ()  # config.json `architectures` entries this family handles
    model_types: tuple[str, ...] = ()  # config.json `model_type` values
    hub_ids: tuple[str, ...] = ()  # hub ids or fnmatch patterns, e.g. "Qwen/Qwen3-*"
    template: str | None = None  # default template name
    lora_targets: tuple[str, ...] = ()  # module names adapter tuners (LoRA ...) target by default
    modalities: tuple[str, ...] = ("text",)
    parts: ModelParts | None = None  # multimodal models: what the --freeze-* flags name
    # Layer classes FSDP wraps one unit each (default: the model's `_no_split_modules`)
    layer_classes: tuple[str, ...] = ()

    def matches_hub_id(self, model_id: str) -> bool:
        return any(fnmatch.fnmatchcase(model_id.lower(), p.lower()) for p in self.hub_ids)


@dataclass(frozen=True, kw_only=True)
class TemplateSpec(Spec):
    """A chat template: turns message rows into token ids and labels."""

    kind: ClassVar[str] = "templates"


@dataclass(frozen=True, kw_only=True)
class EncoderSpec(Spec):
    """A modality encoder: loads and preprocesses one modality (image, audio or video)."""

    kind: ClassVar[str] = "encoders"
    modality: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.modality not in ("image", "audio", "video"):
            raise TypeError(f"encoder {self.name!r}: modality must be image, audio or video")


@dataclass(frozen=True, kw_only=True)
class TunerSpec(Spec):
    """A way to choose and wrap trainable parameters (full, LoRA, ReFT ...).

    `algorithms`: the only algorithms it trains with (e.g. ReFT: ``("sft", "pt")``); empty means every one.
    `shardable`: it trains with strategies that shard parameters over processes (ZeRO-3, FSDP); a tuner that
    reads its trained weights from the model's own modules says False.
    """

    kind: ClassVar[str] = "tuners"
    algorithms: tuple[str, ...] = ()
    shardable: bool = True


@dataclass(frozen=True, kw_only=True)
class AlgorithmSpec(Spec):
    """A training algorithm; `command` is the CLI command that offers it (sft, pt or rlhf).

    `streaming`: it trains from ``--streaming`` rows (a re-iterable read lazily), not only from a list.
    `sequence_parallel`: it trains with each row split across processes when the strategy asks for it
    (`omni.train.strategy.Strategy.sequence_parallel_size`): its collator is wrapped in
    `omni.train.collators.SequenceShardCollator` and its loss adds up the shards'.
    `model_head`: the head the model is loaded with for it: ``causal_lm``, or ``sequence_classification`` (one
    score per sequence: a reward model); see `omni.models.options.LoadOptions`.
    """

    kind: ClassVar[str] = "algorithms"
    command: str
    streaming: bool = False
    sequence_parallel: bool = False
    model_head: str = "causal_lm"


@dataclass(frozen=True, kw_only=True)
class RewardSpec(Spec):
    """A reward for RL: ``reward(prompts, completions, **columns) -> list[float | None]``, or a class taking options."""

    kind: ClassVar[str] = "rewards"


@dataclass(frozen=True, kw_only=True)
class QuantizerSpec(Spec):
    """A quantization method, used when loading (QLoRA) and when exporting.

    `exported_marker`: a file that only this method's exported folders hold (e.g. ``quanto_qmap.json``);
    loading a folder that has it goes through the quantizer's `load_exported`. None: transformers loads the
    method's exports by itself (their config.json records the quantization).
    """

    kind: ClassVar[str] = "quantizers"
    exported_marker: str | None = None


@dataclass(frozen=True, kw_only=True)
class EngineSpec(Spec):
    """An inference engine behind the engine interface (pt, vllm, sglang, lmdeploy)."""

    kind: ClassVar[str] = "engines"


@dataclass(frozen=True, kw_only=True)
class DatasetSpec(Spec):
    """A named dataset, or with `pattern` a family of `--dataset` values (a regex matched in full)."""

    kind: ClassVar[str] = "datasets"
    pattern: str | None = None


@dataclass(frozen=True, kw_only=True)
class StrategySpec(Spec):
    """A distributed training strategy (DeepSpeed, FSDP2 ...). `impl` names a `omni.train.strategy.Strategy`.

    Its options join the flags of every training command whether or not it is used; `switch` is the option
    that turns it on (e.g. ``deepspeed`` for ``--deepspeed zero3``): a strategy whose switch is unset is idle.
    """

    kind: ClassVar[str] = "strategies"
    switch: str

    def __post_init__(self) -> None:
        super().__post_init__()
        names = {f.name for f in dataclasses.fields(self.options)} if self.options is not None else set()
        if self.switch not in names:
            raise TypeError(f"strategy {self.name!r}: switch {self.switch!r} is not one of its options")


@dataclass(frozen=True, kw_only=True)
class CallbackSpec(Spec):
    """Something that joins every training run when switched on. `impl` names a `omni.train.callback.TrainingCallback`.

    Like a strategy, its options join the flags of ``omni sft``/``pt``/``rlhf`` whenever its plugin is installed;
    `switch` is the option that turns it on (e.g. ``eval_benchmarks`` for ``--eval-benchmarks``). Any number may be
    on in one run.
    """

    kind: ClassVar[str] = "callbacks"
    switch: str

    def __post_init__(self) -> None:
        super().__post_init__()
        names = {f.name for f in dataclasses.fields(self.options)} if self.options is not None else set()
        if self.switch not in names:
            raise TypeError(f"callback {self.name!r}: switch {self.switch!r} is not one of its options")


@dataclass(frozen=True, kw_only=True)
class BenchmarkSpec(Spec):
    """A benchmark for ``omni eval``: where its rows come from, how a row is asked, how an answer is scored.

    `impl` names a class built as ``cls(options)`` with ``load(path) -> iterable of dict`` (the rows of a local file
    or folder in `layout`; each row a dict with ``subset`` and what the class needs), ``prompt(row) -> dict`` (a row
    in the messages format to answer) and ``score(answer, row) -> dict[str, float]`` (the metrics of one answer,
    `metric` among them, plus optionally ``extracted``: what was read from the answer). `layout` describes the
    files it reads (shown by ``omni list benchmarks`` and in errors); `modalities` what the model must take in.
    """

    kind: ClassVar[str] = "benchmarks"
    layout: str
    metric: str = "accuracy"
    modalities: tuple[str, ...] = ("text",)


@dataclass(frozen=True, kw_only=True)
class EnvironmentSpec(Spec):
    """An RL environment for multi-turn rollouts (``omni rlhf --algo grpo --environment NAME``).

    `impl` names an `omni.train.environment.Environment` subclass, built as ``cls(options)`` once per rollout: it
    offers `tools`, and its ``step(answer)`` takes the model's turn (its tool calls parsed by the template) and
    returns the next observation (``tool`` messages), optionally a reward, and whether the episode is done.
    """

    kind: ClassVar[str] = "environments"


@dataclass(frozen=True, kw_only=True)
class CommandSpec(Spec):
    """A CLI command. `impl` names ``run(invocation) -> int | None``; `options` is its flags.

    `includes`: kinds every installed spec of which adds its options to this command (the training commands
    include ``strategies``, so ``--deepspeed`` is a flag wherever the DeepSpeed plugin is installed).
    """

    kind: ClassVar[str] = "commands"
    includes: tuple[str, ...] = ()


SPEC_TYPES: dict[str, type[Spec]] = {
    cls.kind: cls
    for cls in (
        ModelSpec,
        TemplateSpec,
        EncoderSpec,
        TunerSpec,
        AlgorithmSpec,
        RewardSpec,
        QuantizerSpec,
        EngineSpec,
        DatasetSpec,
        StrategySpec,
        CallbackSpec,
        BenchmarkSpec,
        EnvironmentSpec,
        CommandSpec,
    )
}


@dataclass(frozen=True)
class Distribution:
    """The installed distribution a plugin comes from."""

    name: str
    version: str


@dataclass(frozen=True)
class Registration:
    """One spec as registered, with the distribution that registered it."""

    spec: Spec
    distribution: Distribution
    origin: str | None = None  # file:line of the plugin's `register(...)` call


@dataclass(frozen=True)
class Selected:
    """A spec chosen for a run (named by a selecting option, or included because it is installed), with the
    options parsed for it."""

    registration: Registration
    options: Any

    @property
    def spec(self) -> Any:
        return self.registration.spec


def selected_one(selected: Mapping[str, list[Selected]], option: str) -> Selected | None:
    """The single spec that the selecting `option` chose (None when that option was left empty)."""
    chosen = selected.get(option, [])
    return chosen[0] if chosen else None


@dataclass
class Registry:
    """All registered specs by kind and name. Name collisions are kept and reported on use."""

    entries: dict[str, dict[str, Registration]] = field(default_factory=lambda: {k: {} for k in KINDS})
    conflicts: dict[tuple[str, str], list[Registration]] = field(default_factory=dict)

    def add(self, registration: Registration) -> str | None:
        """Add a registration; returns a collision message when the name is already taken, else None."""
        spec = registration.spec
        table = self.entries[spec.kind]
        existing = table.get(spec.name)
        if existing is None:
            table[spec.name] = registration
            return None
        if spec.overrides == existing.distribution.name:
            table[spec.name] = registration
            return None
        if existing.spec.overrides == registration.distribution.name:
            return None
        clash = self.conflicts.setdefault((spec.kind, spec.name), [existing])
        clash.append(registration)
        return collision_message(spec.kind, spec.name, clash)

    def names(self, kind: str) -> list[str]:
        return sorted(n for n in self.entries[kind] if (kind, n) not in self.conflicts)

    def all(self, kind: str) -> list[Registration]:
        return [self.entries[kind][n] for n in self.names(kind)]

    def clashing(self, kind: str) -> list[Registration]:
        """Every registration of a name of `kind` that several distributions registered (none of them usable)."""
        return [reg for (k, _), clash in sorted(self.conflicts.items()) if k == kind for reg in clash]

    def clash_for(self, kind: str, name: str) -> list[Registration] | None:
        """The clashing registrations when `name` (spelled as `find` accepts) is one of `kind`'s clashes, else None."""
        key = _normalise(name)
        for (k, clashed), clash in self.conflicts.items():
            if k == kind and key in {_normalise(clashed), *(_normalise(a) for r in clash for a in r.spec.aliases)}:
                return clash
        return None

    def registration_of(self, spec: Spec) -> Registration | None:
        """The registration holding this very spec object, if any."""
        for table in self.entries.values():
            for reg in table.values():
                if reg.spec is spec:
                    return reg
        return next((r for clash in self.conflicts.values() for r in clash if r.spec is spec), None)

    def find(self, kind: str, name: str) -> Registration | None:
        """The registration for a name or alias (case-insensitive; `_` and `-` are the same), or None."""
        clash = self.clash_for(kind, name)
        if clash:
            raise OmniError(collision_message(kind, clash[0].spec.name, clash))
        key = _normalise(name)
        for reg in self.all(kind):
            if key == _normalise(reg.spec.name) or key in map(_normalise, reg.spec.aliases):
                return reg
        return None

    def get(self, kind: str, name: str) -> Registration:
        """Like `find`, but a missing name raises an error saying which distribution provides it."""
        reg = self.find(kind, name)
        if reg is None:
            raise MissingCapabilityError(missing_message(kind, name, self.names(kind)))
        return reg


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def singular(kind: str) -> str:
    if kind.endswith("ies"):
        return kind[:-3] + "y"
    return kind[:-1] if kind.endswith("s") else kind


def collision_message(kind: str, name: str, clash: list[Registration]) -> str:
    dists = " and ".join(f"{r.distribution.name} {r.distribution.version}" for r in clash)
    return (
        f"{singular(kind)} {name!r} is registered by both {dists}; uninstall one, or have one declare "
        f"overrides=<the other distribution> in its spec"
    )


def provider_of(kind: str, name: str) -> str | None:
    """The distribution the plugin indexes (`omni.plugin_index`) name for `name` of `kind`, or None."""
    from omni import plugin_index  # read only when something is missing

    return plugin_index.provider_of(kind, name)


def missing_message(kind: str, name: str, installed: list[str]) -> str:
    provider = provider_of(kind, name)
    head = f"{singular(kind)} {name!r} is not installed"
    if provider:
        head += f": pip install {provider}"
    return f"{head} (installed {kind}: {', '.join(installed) or 'none'})"
