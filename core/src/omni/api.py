"""omni's public plugin API: the one module a plugin imports from.

Everything a plugin needs from omni-core is importable from here, and nothing else of omni is promised to
plugins: other modules may change in any release. ``tests/core/test_plugin_api.py`` holds every plugin in
this repository to that boundary (their tests may import `omni.testing` as well).

Versioning. ``API_VERSION`` is ``"MAJOR.MINOR"``; ``PLUGIN_API_VERSION`` is its major. A release that
removes or changes a name exported here, or a hook's contract, raises the major; one that only adds names
raises the minor. A plugin declares what it was written against at module level, ``OMNI_PLUGIN_API = 1``
(any 1.x) or ``OMNI_PLUGIN_API = "1.0"`` (1.0 or a later 1.x); omni reports a plugin it cannot serve
(another major, or a newer minor) in ``omni plugins`` and does not load it. ``ADDED_IN`` says which minor
added each name, so a plugin's declaration covers the names it imports.

Importing this module is light: the names a plugin's entry module uses to register specs (hook marker,
spec records, ``option``, errors) are plain imports of light modules; every other name (base classes and
helpers that bring torch or transformers along) is imported on first attribute access, so
``from omni.api import Tuner`` belongs in a plugin's ``impl`` module, not in its entry module. Because
attribute access is lazy, ``impl="omni.api:load_pretrained"`` is a valid spec reference too.

The names, by what they are for:

- Registering: `hookimpl`, the spec records (`ModelSpec`, `TemplateSpec`, `EncoderSpec`, `TunerSpec`,
  `AlgorithmSpec`, `RewardSpec`, `QuantizerSpec`, `EngineSpec`, `DatasetSpec`, `StrategySpec`,
  `CallbackSpec`, `BenchmarkSpec`, `EnvironmentSpec`, `CommandSpec`, their base `Spec`), `ModelParts`, `Selector`, `option`.
- Errors: `OmniError`, `DataError`, `MissingCapabilityError`.
- Looking things up: `Registry`, `Registration`, `Distribution`, `import_ref`, `find_tuner`, `get_registry`
  (the running omni's registry, for code that is not handed one); `command_options` (a command's options as
  `--help` groups them, the selected and included plugins' too, as `OptionGroup`s of `OptionField`s: for
  front ends that build forms or wizards from them).
- Models: `ModelOptions`, `LoadOptions`, `load_model`, `load_pretrained`, `load_image_text_to_text` (the
  generic vision-language loader: any `AutoModelForImageTextToText` checkpoint and its processor), `pretrained_kwargs`,
  `atomic_text_file`, `atomic_directory` (a file or folder that appears whole or not at all); for quantizers, `encoded_batches` (dataset rows encoded with a loaded model's template
  as one-row model inputs: calibration, held-out sets), `perplexity` (of a model on such batches) and
  `transformers_skip_patterns` (modules to keep unquantized, as a transformers quantization config names them).
- Templates: `Template`, `TemplateOptions`, `Encoded`, `RowTooLongError`, `IGNORE_INDEX` (the label of
  tokens that take no loss, -100), `TOKEN_TYPE_KEYS` and `TOKEN_AXIS_KEYS` (encoded inputs with a value per
  token: each token's modality, Qwen-VL's ``mm_token_type_ids`` and Gemma 3's ``token_type_ids``; media inputs such
  as Mllama's ``cross_attention_mask``; cut, padded and extended with the ids), `ChatMLTemplate`,
  `IM_START`/`IM_END` (ChatML's turn markers), `answer_turn`, `Piece`, `PieceTemplate`; for tool calling, `ToolCallParser` (a template's `tool_parser`),
  `ToolCall`, `ParsedAnswer` and the parsing helpers `json_object`, `partial_marker_end`.
- Rows and media: `Row`, `row_error`, `with_origin`, `MEDIA_TAG` (tag pattern by modality), `media_tags`,
  `tagged_row`, `MediaContext`, `load_image`, `load_audio`, `load_video`, `Video`,
  `DEFAULT_SAMPLING_RATE` (audio, Hz), `DEFAULT_FPS` and `DEFAULT_MAX_FRAMES` (video sampling).
- Training: `TrainingJob`, `TrainResult`, `log_line`, `Tuner`, `FullTuner`, `Quantizer`, `Strategy`,
  `current_processes` (this process's rank and the run's number of processes),
  `merge_extras`, `ProgressBarCallback`, `current_labels`, `TrainingCallback` (callback plugins),
  `Environment` and `EnvironmentStep` (RL environments for multi-turn rollouts).
- Inference: `Engine`, `InferRequest`, `InferResponse`, `Choice`, `StreamDelta`, `GenerationConfig`,
  `TokenLogprob`, `SpokenAnswer` and `SpeechDelta` (engines that speak: `Engine.speak`, `speak_stream`),
  the optional features an engine declares (`PROMPT_IDS`, `TOP_LOGPROBS`, `SCORING`, `USE_AUDIO_IN_VIDEO`),
  `PromptEncoder`, `LoopEngine`, `LoopThread`, `RemoteEngine`, `ServerModes`, `PtEngine`, `cut_at_stop`,
  `merged_weights`, `check_weights_fit` (whether a weights file fits a model, for `Engine.load_weights_file`);
  for commands that generate: `GenerationOptions`, `TemplateCliOptions`, `parse_adapters`,
  `with_training_defaults` (an adapter's recorded base model and template fill the flags left empty),
  `open_engine` (the `--infer-backend` engine with the command's model, adapter and template flags) and
  `EMBEDDED_MODEL` (the model used when no `--model` is given).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from omni import PLUGIN_API_VERSION, hookimpl
from omni.errors import DataError, MissingCapabilityError, OmniError
from omni.options import option
from omni.registry import (
    AlgorithmSpec,
    BenchmarkSpec,
    CallbackSpec,
    CommandSpec,
    DatasetSpec,
    Distribution,
    EncoderSpec,
    EngineSpec,
    EnvironmentSpec,
    ModelParts,
    ModelSpec,
    QuantizerSpec,
    Registration,
    Registry,
    RewardSpec,
    Selector,
    Spec,
    StrategySpec,
    TemplateSpec,
    TunerSpec,
    import_ref,
)

# The minor version that added each name after 1.0. A plugin importing one declares at least that version
# (``OMNI_PLUGIN_API = "1.N"``), so an older omni refuses it when plugins load rather than failing at the import.
# 1.6 also added the method Engine.load_weights_file.
ADDED_IN: dict[str, int] = {
    **dict.fromkeys(("CallbackSpec", "BenchmarkSpec", "TrainingCallback", "GenerationOptions", "TemplateCliOptions",
                     "parse_adapters", "with_training_defaults"), 1),
    "load_image_text_to_text": 2,
    "command_options": 3,
    **dict.fromkeys(("ToolCallParser", "ToolCall", "ParsedAnswer", "json_object", "partial_marker_end"), 4),
    **dict.fromkeys(("EnvironmentSpec", "Environment", "EnvironmentStep"), 5),
    "check_weights_fit": 6,
    "atomic_directory": 7,
    **dict.fromkeys(("TOKEN_TYPE_KEYS", "TOKEN_AXIS_KEYS"), 8),
}  # fmt: skip
API_VERSION = f"{PLUGIN_API_VERSION}.{max(ADDED_IN.values())}"

# Names imported on first access: their modules bring heavy libraries along, or are needed only at run time.
_LAZY: dict[str, str] = {
    # models
    "ModelOptions": "omni.models.options",
    "LoadOptions": "omni.models.options",
    "load_model": "omni.models.loader",
    "load_pretrained": "omni.models.loader",
    "load_image_text_to_text": "omni.models.multimodal",
    "pretrained_kwargs": "omni.models.loader",
    "atomic_text_file": "omni.models.atomic",
    "atomic_directory": "omni.models.atomic",
    # templates
    "Template": "omni.template.base",
    "TemplateOptions": "omni.template.base",
    "Encoded": "omni.template.base",
    "RowTooLongError": "omni.template.base",
    "IGNORE_INDEX": "omni.template.base",
    "TOKEN_AXIS_KEYS": "omni.template.base",
    "TOKEN_TYPE_KEYS": "omni.template.base",
    "ChatMLTemplate": "omni.template.chatml",
    "IM_START": "omni.template.chatml",
    "IM_END": "omni.template.chatml",
    "answer_turn": "omni.template.chatml",
    "Piece": "omni.template.pieces",
    "PieceTemplate": "omni.template.pieces",
    "ToolCallParser": "omni.template.tools",
    "ToolCall": "omni.template.tools",
    "ParsedAnswer": "omni.template.tools",
    "json_object": "omni.template.tools",
    "partial_marker_end": "omni.template.tools",
    # rows and media
    "Row": "omni.data.rows",
    "row_error": "omni.data.rows",
    "with_origin": "omni.data.rows",
    "MEDIA_TAG": "omni.data.convert",
    "media_tags": "omni.data.convert",
    "tagged_row": "omni.data.convert",
    "MediaContext": "omni.encoders.sources",
    "load_image": "omni.encoders.image",
    "load_audio": "omni.encoders.audio",
    "DEFAULT_SAMPLING_RATE": "omni.encoders.audio",
    "load_video": "omni.encoders.video",
    "Video": "omni.encoders.video",
    "DEFAULT_FPS": "omni.encoders.video",
    "DEFAULT_MAX_FRAMES": "omni.encoders.video",
    # training
    "TrainingJob": "omni.train.job",
    "TrainResult": "omni.train.job",
    "log_line": "omni.train.job",
    "Tuner": "omni.train.tuner",
    "FullTuner": "omni.train.tuners",
    "Quantizer": "omni.train.quantizer",
    "Strategy": "omni.train.strategy",
    "current_processes": "omni.train.launch",
    "merge_extras": "omni.train.collators",
    "ProgressBarCallback": "omni.train.progress",
    "current_labels": "omni.train.trainer",
    "TrainingCallback": "omni.train.callback",
    "Environment": "omni.train.environment",
    "EnvironmentStep": "omni.train.environment",
    # inference
    "Engine": "omni.infer.engine",
    "InferRequest": "omni.infer.engine",
    "InferResponse": "omni.infer.engine",
    "Choice": "omni.infer.engine",
    "StreamDelta": "omni.infer.engine",
    "SpokenAnswer": "omni.infer.engine",
    "SpeechDelta": "omni.infer.engine",
    "TokenLogprob": "omni.infer.engine",
    "PROMPT_IDS": "omni.infer.engine",
    "TOP_LOGPROBS": "omni.infer.engine",
    "SCORING": "omni.infer.engine",
    "USE_AUDIO_IN_VIDEO": "omni.infer.engine",
    "GenerationConfig": "omni.infer.engine",
    "PromptEncoder": "omni.infer.prompting",
    "LoopEngine": "omni.infer.loop_thread",
    "LoopThread": "omni.infer.loop_thread",
    "RemoteEngine": "omni.infer.remote",
    "ServerModes": "omni.infer.remote",
    "PtEngine": "omni.infer.pt_engine",
    "cut_at_stop": "omni.infer.stops",
    "merged_weights": "omni.infer.weights",
    "check_weights_fit": "omni.infer.weights",
    "find_tuner": "omni.infer.adapters",
    "get_registry": "omni.plugins",
    "command_options": "omni.command_options",
    "OptionGroup": "omni.command_options",
    "OptionField": "omni.command_options",
    "parse_adapters": "omni.infer.adapters",
    "with_training_defaults": "omni.infer.recorded",
    "open_engine": "omni.infer.command",
    "EMBEDDED_MODEL": "omni.models.embedded",
    "encoded_batches": "omni.export.data",
    "perplexity": "omni.export.data",
    "transformers_skip_patterns": "omni.export.quantize",
    "GenerationOptions": "omni.infer.options",
    "TemplateCliOptions": "omni.template.options",
}

__all__ = [
    "API_VERSION",
    "PLUGIN_API_VERSION",
    "ADDED_IN",
    "hookimpl",
    "option",
    "OmniError",
    "DataError",
    "MissingCapabilityError",
    "Spec",
    "ModelSpec",
    "TemplateSpec",
    "EncoderSpec",
    "TunerSpec",
    "AlgorithmSpec",
    "RewardSpec",
    "QuantizerSpec",
    "EngineSpec",
    "DatasetSpec",
    "StrategySpec",
    "CallbackSpec",
    "BenchmarkSpec",
    "EnvironmentSpec",
    "CommandSpec",
    "ModelParts",
    "Selector",
    "Registry",
    "Registration",
    "Distribution",
    "import_ref",
    "ModelOptions",
    "LoadOptions",
    "load_model",
    "load_pretrained",
    "load_image_text_to_text",
    "pretrained_kwargs",
    "atomic_text_file",
    "atomic_directory",
    "Template",
    "TemplateOptions",
    "Encoded",
    "RowTooLongError",
    "IGNORE_INDEX",
    "TOKEN_AXIS_KEYS",
    "TOKEN_TYPE_KEYS",
    "ChatMLTemplate",
    "IM_START",
    "IM_END",
    "answer_turn",
    "Piece",
    "PieceTemplate",
    "ToolCallParser",
    "ToolCall",
    "ParsedAnswer",
    "json_object",
    "partial_marker_end",
    "Row",
    "row_error",
    "with_origin",
    "MEDIA_TAG",
    "media_tags",
    "tagged_row",
    "MediaContext",
    "load_image",
    "load_audio",
    "DEFAULT_SAMPLING_RATE",
    "load_video",
    "Video",
    "DEFAULT_FPS",
    "DEFAULT_MAX_FRAMES",
    "TrainingJob",
    "TrainResult",
    "log_line",
    "Tuner",
    "FullTuner",
    "Quantizer",
    "Strategy",
    "current_processes",
    "merge_extras",
    "ProgressBarCallback",
    "current_labels",
    "TrainingCallback",
    "Environment",
    "EnvironmentStep",
    "Engine",
    "InferRequest",
    "InferResponse",
    "Choice",
    "StreamDelta",
    "SpokenAnswer",
    "SpeechDelta",
    "TokenLogprob",
    "PROMPT_IDS",
    "TOP_LOGPROBS",
    "SCORING",
    "USE_AUDIO_IN_VIDEO",
    "GenerationConfig",
    "PromptEncoder",
    "LoopEngine",
    "LoopThread",
    "RemoteEngine",
    "ServerModes",
    "PtEngine",
    "cut_at_stop",
    "merged_weights",
    "check_weights_fit",
    "find_tuner",
    "get_registry",
    "command_options",
    "OptionGroup",
    "OptionField",
    "parse_adapters",
    "with_training_defaults",
    "open_engine",
    "EMBEDDED_MODEL",
    "encoded_batches",
    "perplexity",
    "transformers_skip_patterns",
    "GenerationOptions",
    "TemplateCliOptions",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omni.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # type checkers and editors see the lazy names as plain imports
    from omni.command_options import OptionField, OptionGroup, command_options
    from omni.data.convert import MEDIA_TAG, media_tags, tagged_row
    from omni.data.rows import Row, row_error, with_origin
    from omni.encoders.audio import DEFAULT_SAMPLING_RATE, load_audio
    from omni.encoders.image import load_image
    from omni.encoders.sources import MediaContext
    from omni.encoders.video import DEFAULT_FPS, DEFAULT_MAX_FRAMES, Video, load_video
    from omni.export.data import encoded_batches, perplexity
    from omni.export.quantize import transformers_skip_patterns
    from omni.infer.adapters import find_tuner, parse_adapters
    from omni.infer.command import open_engine
    from omni.infer.engine import (
        PROMPT_IDS,
        SCORING,
        TOP_LOGPROBS,
        USE_AUDIO_IN_VIDEO,
        Choice,
        Engine,
        GenerationConfig,
        InferRequest,
        InferResponse,
        SpeechDelta,
        SpokenAnswer,
        StreamDelta,
        TokenLogprob,
    )
    from omni.infer.loop_thread import LoopEngine, LoopThread
    from omni.infer.options import GenerationOptions
    from omni.infer.prompting import PromptEncoder
    from omni.infer.pt_engine import PtEngine
    from omni.infer.recorded import with_training_defaults
    from omni.infer.remote import RemoteEngine, ServerModes
    from omni.infer.stops import cut_at_stop
    from omni.infer.weights import check_weights_fit, merged_weights
    from omni.models.atomic import atomic_directory, atomic_text_file
    from omni.models.embedded import EMBEDDED_MODEL
    from omni.models.loader import load_model, load_pretrained, pretrained_kwargs
    from omni.models.multimodal import load_image_text_to_text
    from omni.models.options import LoadOptions, ModelOptions
    from omni.plugins import get_registry
    from omni.template.base import (
        IGNORE_INDEX,
        TOKEN_AXIS_KEYS,
        TOKEN_TYPE_KEYS,
        Encoded,
        RowTooLongError,
        Template,
        TemplateOptions,
    )
    from omni.template.chatml import IM_END, IM_START, ChatMLTemplate, answer_turn
    from omni.template.options import TemplateCliOptions
    from omni.template.pieces import Piece, PieceTemplate
    from omni.template.tools import ParsedAnswer, ToolCall, ToolCallParser, json_object, partial_marker_end
    from omni.train.callback import TrainingCallback
    from omni.train.collators import merge_extras
    from omni.train.environment import Environment, EnvironmentStep
    from omni.train.job import TrainingJob, TrainResult, log_line
    from omni.train.launch import current_processes
    from omni.train.progress import ProgressBarCallback
    from omni.train.quantizer import Quantizer
    from omni.train.strategy import Strategy
    from omni.train.trainer import current_labels
    from omni.train.tuner import Tuner
    from omni.train.tuners import FullTuner
