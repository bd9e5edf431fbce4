"""Flags of `omni eval` and of benchmark evaluation during training (light: used to build --help)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.api import GenerationOptions, ModelOptions, TemplateCliOptions, option

DATASET_HELP = (
    "benchmarks to score: NAME=PATH (a built-in or plugin benchmark reading the file or folder PATH), NAME "
    "(read from --eval-data-dir/NAME), or a FILE (a built-in benchmark chosen by the file's columns); see "
    "`omni list benchmarks`. With --eval-backend evalscope: EvalScope's benchmark NAME reading its local copy PATH"
)


@dataclass
class EvalOptions(GenerationOptions, TemplateCliOptions, ModelOptions):
    """Flags of `omni eval`: what to score, with which model and adapters, through which engine, and where to write."""

    eval_dataset: list[str] = option(default_factory=list, help=DATASET_HELP, metavar="NAME=PATH|NAME|FILE")
    eval_data_dir: str = option("eval_data", help="where a benchmark named without a path is read from (DIR/NAME)")
    eval_limit: int | None = option(None, help="score at most this many rows of each benchmark (the first ones)")
    adapters: list[str] = option(
        default_factory=list,
        help="adapter folders to score, as DIR or NAME=DIR, each a run of the report (with --eval-url: names the "
        "server serves); without --model, the base model is the one the first adapter was trained on",
        metavar="[NAME=]DIR",
    )
    eval_base: bool = option(True, help="with --adapters, also score the base model, for comparison")
    infer_backend: str = option("pt", help="inference engine that answers (see `omni list engines`)")
    eval_url: str | None = option(
        None,
        help="score a model already served (omni serve, or any OpenAI-compatible API) at this base URL, e.g. "
        "http://127.0.0.1:8000; --model names the served model (default: the server's first)",
        aliases=("eval_api_url",),
    )
    eval_api_key: str | None = option(None, help="API key for --eval-url", aliases=("api_key",))
    eval_backend: Literal["native", "evalscope"] = option(
        "native",
        help="native: omni's benchmarks; evalscope: EvalScope's (run from its own environment, see "
        "--evalscope-python) against omni's own server, or the one at --eval-url",
    )
    eval_dataset_args: str | None = option(
        None,
        help='EvalScope backend: its dataset_args as JSON, e.g. \'{"general_mcq": {"local_path": "data/mcq", '
        '"subset_list": ["example"]}}\' (--eval-dataset NAME=PATH sets local_path)',
    )
    eval_num_proc: int = option(16, help="EvalScope backend: requests it sends the server at once")
    evalscope_python: str | None = option(
        None,
        help="EvalScope backend: the Python of the environment EvalScope is installed in (default: "
        "$OMNI_EVALSCOPE_PYTHON, else the interpreter of an `evalscope` command on PATH)",
    )
    eval_output_dir: str | None = option(
        None, help="where answers, summary.json and the report go (default: eval_output/MODEL/TIMESTAMP)"
    )
    max_new_tokens: int | None = option(
        None, help="most tokens per answer (default: each benchmark's own, e.g. 512 for math)", aliases=("max_tokens",)
    )


@dataclass
class TrainEvalOptions:
    """Benchmark scores during `omni sft|pt|rlhf` (ms-swift's --eval_dataset; --val-dataset is the validation loss)."""

    eval_dataset: list[str] = option(
        default_factory=list,
        help="benchmarks scored at each evaluation (every --eval-steps) and at the end, plotted beside the loss and "
        "logged as eval_NAME_METRIC (a --metric-for-best-model): NAME=PATH, NAME or FILE as for `omni eval`",
        metavar="NAME=PATH|NAME|FILE",
    )
    eval_limit: int | None = option(None, help="score at most this many rows of each benchmark during training")
    eval_data_dir: str = option("eval_data", help="where a benchmark named without a path is read from (DIR/NAME)")
    eval_max_new_tokens: int | None = option(
        None, help="most tokens per answer during training evaluation (default: each benchmark's own)"
    )
