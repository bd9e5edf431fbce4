"""Flags of `omni infer` and of the built-in `pt` engine (no heavy imports: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass

from omni.infer.engine import GenerationConfig
from omni.models.options import ModelOptions
from omni.options import option
from omni.template.options import TemplateCliOptions


@dataclass
class GenerationOptions:
    """Sampling flags shared by the commands that generate text."""

    max_new_tokens: int = option(512, help="most tokens to generate per answer", aliases=("max_tokens",))
    temperature: float = option(0.0, help="sampling temperature; 0 means greedy decoding")
    top_p: float = option(1.0, help="nucleus sampling: keep the smallest set of tokens with this much probability")
    top_k: int = option(0, help="sample only among the k most likely tokens; 0 means no cut")
    repetition_penalty: float = option(1.0, help="penalise tokens already generated (>1 repeats less)")
    seed: int | None = option(None, help="random seed for sampling, for reproducible answers")
    stop: list[str] = option(
        default_factory=list,
        help="stop generating at any of these strings (on top of the template's)",
        aliases=("stop_words",),
    )

    def generation_config(self) -> GenerationConfig:
        """These flags as the engine interface's `GenerationConfig`."""
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
            stop=list(self.stop),
        )


@dataclass
class InferOptions(GenerationOptions, TemplateCliOptions, ModelOptions):
    """Flags of `omni infer`: the model and adapters, the chat template, the input mode, sampling and the engine."""

    adapters: list[str] = option(
        default_factory=list,
        help="adapter folders to load, as DIR or NAME=DIR; the first one answers unless --adapter-name picks "
        "another; without --model, the base model is the one the first adapter was trained on",
        metavar="[NAME=]DIR",
    )
    adapter_name: str | None = option(None, help="which loaded adapter answers (default: the first one)")
    route_by: str | None = option(
        None,
        help="--input rows pick their adapter by this column's value (mapped by --routes, else the value is the "
        "adapter's name); a row's own `adapter` column wins",
        metavar="COLUMN",
    )
    routes: list[str] = option(
        default_factory=list, help="how --route-by values map to adapters: VALUE=ADAPTER ...", metavar="VALUE=ADAPTER"
    )
    query: str | None = option(None, help="answer this one question, print the answer and exit")
    input: str | None = option(
        None,
        help="rows to answer in batches (needs --output): a .jsonl/.json/.csv/.parquet file or dataset name, in "
        "the messages, ShareGPT or Alpaca format; a final assistant turn is left out of the prompt",
    )
    output: str | None = option(
        None, help="where --input's answers go: each input row plus a `response` column", aliases=("result_path",)
    )
    image: list[str] = option(
        default_factory=list, help="images for --query (paths, URLs or data: URIs); repeat the flag or list several"
    )
    audio: list[str] = option(default_factory=list, help="audio files for --query; repeat the flag or list several")
    video: list[str] = option(default_factory=list, help="videos for --query; repeat the flag or list several")
    speak: str | None = option(
        None, help="models with a talker (Qwen3-Omni): also speak --query's answer into this WAV file", metavar="WAV"
    )
    voice: str | None = option(
        None, help="the voice --speak answers in (one the model has, e.g. Qwen3-Omni's ethan; default: its first)"
    )
    stream: bool = option(True, help="print answers as they are generated (interactive chat and --query)")
    infer_backend: str = option("pt", help="inference engine (see `omni list engines`)")


@dataclass
class PtEngineOptions:
    """Options of the built-in PyTorch engine."""

    max_batch_size: int = option(16, help="most requests the pt engine generates together in one batch")
    max_wait_ms: float = option(
        10.0, help="how long a request waits for others to batch with (serving; concurrent async requests)"
    )
