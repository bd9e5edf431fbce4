"""`--eval-backend evalscope`: EvalScope's benchmarks, run from its own environment against omni's server.

EvalScope cannot live in omni's environment (evalscope 1.14.1 needs ``modelscope[datasets]``, whose datasets range
excludes omni's pinned datasets 5.2.0), so it runs as a subprocess with its own Python (`--evalscope-python`), as
ms-swift's `swift eval` runs it in-process: `omni serve` starts on a free loopback port for the model and its
adapters (or `--eval-url` names a running server), `evalscope_runner.py` builds EvalScope's TaskConfig (OpenAI API
service, the datasets from their local copies, the limit, the generation settings) for each run, and EvalScope's
reports and per-sample reviews become omni's report: summary.json, answers JSONL, chart and page.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omni.api import EMBEDDED_MODEL, OmniError, RemoteEngine

from omni_plugin_eval.options import EvalOptions
from omni_plugin_eval.report import write_answers, write_summary

RUNNER = Path(__file__).with_name("evalscope_runner.py")
PYTHON_ENV = "OMNI_EVALSCOPE_PYTHON"
CREATE_ENV = (
    "create EvalScope's own environment: python3 -m venv .venv-evalscope && .venv-evalscope/bin/pip install "
    "-c constraints-evalscope.txt evalscope==1.14.1 (scripts/setup.sh does this), then pass --evalscope-python "
    ".venv-evalscope/bin/python or set OMNI_EVALSCOPE_PYTHON"
)


def run_evalscope(invocation: Any, options: EvalOptions, adapters: dict[str, str]) -> int:
    """Score the model (and `adapters`, by name) on EvalScope's benchmarks through omni's server; write omni's report.

    `options` are the command's, with an adapter's training defaults (its base model) filled in."""
    from omni_plugin_eval.command import default_output_dir, print_report, remote_engine

    datasets, dataset_args = dataset_request(options.eval_dataset, options.eval_dataset_args)
    python = evalscope_python(options.evalscope_python)
    # A running server is asked its model's name now (no model loads); omni serve is launched after EvalScope's check.
    server = remote_engine(options, adapters, invocation.registry) if options.eval_url else None
    model = server.served_model if server else options.model or EMBEDDED_MODEL
    output_dir = Path(options.eval_output_dir or default_output_dir(model)).absolute()
    work_dir = output_dir / "evalscope"
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with EvalScopeRunner(python, work_dir / "evalscope.log") as runner:
            version = runner.check(datasets, dataset_args)  # before any model loads
            if server is None:
                server = OmniServer.open(
                    model,
                    options=ServeOptions(),
                    adapters=adapters,
                    model_options=options,
                    registry=invocation.registry,
                )
            runs: dict[str, str] = {}
            if options.eval_base or not adapters:
                runs["base" if adapters else Path(server.served_model).name] = server.served_model
            runs.update({name: name for name in adapters})
            started = time.perf_counter()
            job = {
                "api_url": server.url + "/v1",
                "api_key": options.eval_api_key,
                "runs": runs,
                "limit": options.eval_limit,
                "generation_config": generation_config(options),
                "eval_batch_size": options.eval_num_proc,
                "work_dir": str(work_dir),
            }
            runner.run(job, list(runs))
            elapsed = time.perf_counter() - started
    finally:
        if server is not None:
            server.close()
    summary = {run: read_run(work_dir, run, datasets, dataset_args, output_dir) for run in runs}
    meta = {
        "model": model,
        "adapters": adapters,
        "engine": f"evalscope {version} via "
        + (options.eval_url or f"omni serve --infer-backend {options.infer_backend}"),
        "generation": job["generation_config"],
        "seconds": round(elapsed, 2),
        "evalscope_work_dir": str(work_dir),
    }
    print_report(summary, write_summary(output_dir, summary, meta))
    return 0


def evalscope_python(given: str | None) -> str:
    """The Python of EvalScope's environment: `--evalscope-python`, $OMNI_EVALSCOPE_PYTHON, or next to `evalscope`."""
    for source, value in (("--evalscope-python", given), (PYTHON_ENV, os.environ.get(PYTHON_ENV))):
        if value:
            if not Path(value).is_file():
                raise OmniError(f"{source} {value}: no such Python; {CREATE_ENV}")
            return value
    command = shutil.which("evalscope")
    if command:
        beside = Path(command).with_name("python")
        if beside.is_file():
            return str(beside)
    raise OmniError(f"--eval-backend evalscope needs EvalScope's Python, and none was found; {CREATE_ENV}")


def dataset_request(values: list[str], args_json: str | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """EvalScope's datasets and dataset_args from `--eval-dataset NAME[=PATH]` and `--eval-dataset-args` JSON.

    Every dataset must be read from a local copy (nothing is downloaded): PATH, or its ``local_path``."""
    if not values:
        raise OmniError("--eval-dataset is empty; name EvalScope benchmarks with their local copies: NAME=PATH")
    try:
        dataset_args = json.loads(args_json) if args_json else {}
    except json.JSONDecodeError as exc:
        raise OmniError(f"--eval-dataset-args is not JSON ({exc})") from None
    if not isinstance(dataset_args, dict) or not all(isinstance(v, dict) for v in dataset_args.values()):
        raise OmniError('--eval-dataset-args must be a JSON object of objects: {"NAME": {"local_path": PATH, ...}}')
    datasets = []
    for value in values:
        name, sep, path = value.partition("=")
        entry = dataset_args.setdefault(name, {})
        if sep:
            entry["local_path"] = path
        if not entry.get("local_path"):
            raise OmniError(
                f"--eval-dataset {name}: give its local copy (nothing is downloaded here): --eval-dataset {name}=PATH, "
                f'or --eval-dataset-args \'{{"{name}": {{"local_path": PATH}}}}\''
            )
        local = Path(entry["local_path"]).expanduser().absolute()
        if not local.exists():
            raise OmniError(f"--eval-dataset {name}: its local_path {local} does not exist")
        entry["local_path"] = str(local)
        datasets.append(name)
    unused = sorted(set(dataset_args) - set(datasets))
    if unused:
        raise OmniError(f"--eval-dataset-args names {', '.join(unused)}, which --eval-dataset does not")
    return datasets, dataset_args


def generation_config(options: EvalOptions) -> dict[str, Any]:
    """omni's generation flags as EvalScope's generation_config (only what was set, beyond greedy decoding)."""
    config: dict[str, Any] = {"temperature": options.temperature, "top_p": options.top_p}
    if options.max_new_tokens:
        config["max_tokens"] = options.max_new_tokens
    if options.seed is not None:
        config["seed"] = options.seed
    if options.stop:
        config["stop_seqs"] = list(options.stop)
    return config


@dataclass
class ServeOptions:
    """What `RemoteEngine.open` asks of its options: no URL (launch one), no key, how long to wait for it."""

    server_url: str | None = None
    server_api_key: str | None = None
    server_startup_timeout: float = 600


class OmniServer(RemoteEngine):
    """`omni serve` launched on a free loopback port for the model and its adapters, stopped on close."""

    @classmethod
    def launch_command(
        cls, path: str, name: str, port: int, options: Any, adapters: dict[str, str], model_options: EvalOptions
    ) -> list[str]:
        command = [sys.executable, "-m", "omni", "serve", "--model", path, "--served-model-name", name]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        command += ["--infer-backend", model_options.infer_backend, "--torch-dtype", model_options.torch_dtype]
        if model_options.template:
            command += ["--template", model_options.template]
        if model_options.system:
            command += ["--system", model_options.system]
        if adapters:
            command += ["--adapters", *(f"{label}={folder}" for label, folder in adapters.items())]
        return command


class EvalScopeRunner:
    """`evalscope_runner.py` under EvalScope's Python; its own output goes to `log`."""

    def __init__(self, python: str, log: Path) -> None:
        self.log_path = log
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [python, "-I", str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        )

    def __enter__(self) -> EvalScopeRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def check(self, datasets: list[str], dataset_args: dict[str, Any]) -> str:
        """EvalScope's version, once it has checked that it knows every dataset; `OmniError` when not."""
        self._send({"datasets": datasets, "dataset_args": dataset_args})
        return self._receive()["evalscope"]

    def run(self, job: dict[str, Any], runs: list[str]) -> None:
        """Run EvalScope for every run of `job` and wait until each is done."""
        self._send(job)
        for _ in runs:
            self._receive()

    def _send(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def _receive(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            said = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
            last = said[-1].strip() if said else "(it printed nothing)"
            raise OmniError(f"EvalScope stopped (exit status {status}): {last} (its log: {self.log_path})")
        message = json.loads(line)
        if "error" in message:
            raise OmniError(message["error"])
        return message


def read_run(
    work_dir: Path, run: str, datasets: list[str], dataset_args: dict[str, Any], output_dir: Path
) -> dict[str, Any]:
    """One run's summary entries (omni's shape) from EvalScope's reports; writes its answers from the reviews."""
    entries = {}
    for name in datasets:
        report_file = work_dir / "reports" / run / f"{name}.json"
        if not report_file.is_file():
            raise OmniError(f"EvalScope wrote no report for {name} ({report_file}); see {work_dir / 'evalscope.log'}")
        report = json.loads(report_file.read_text())
        metric = report["primary_metric_identity"]["name"]
        by_metric = {m["identity"]["name"]: m for m in report["metrics"]}
        subsets: dict[str, dict[str, Any]] = {}
        for name_of_metric, entry in by_metric.items():
            for category in entry["categories"]:
                for subset in category["subsets"]:
                    if not subset.get("is_aggregate"):
                        part = subsets.setdefault(subset["name"], {"count": subset["num"], "metrics": {}})
                        part["metrics"][name_of_metric] = subset["score"]
        for part in subsets.values():
            part["score"] = part["metrics"].get(metric, 0.0)
        answers = review_lines(work_dir / "reviews" / run, name, list(subsets))
        write_answers(output_dir, run, name, answers)
        headline = by_metric[metric]
        entries[name] = {
            "benchmark": f"evalscope:{name}",
            "data": dataset_args[name]["local_path"],
            "metric": metric,
            "score": headline["score"],
            "correct": sum(a.get(metric, 0.0) for a in answers) if answers else headline["score"] * headline["num"],
            "count": headline["num"],
            "metrics": {key: value["score"] for key, value in by_metric.items()},
            "subsets": dict(sorted(subsets.items())),
        }
    return entries


def review_lines(reviews: Path, dataset: str, subsets: list[str]) -> list[dict[str, Any]]:
    """EvalScope's per-sample reviews of `dataset` as omni's answer lines: prompt, answer, extracted, metrics."""
    lines = []
    for subset in subsets:
        path = reviews / f"{dataset}_{subset}.jsonl"
        if not path.is_file():
            continue
        for text in path.read_text().splitlines():
            review = json.loads(text)
            score = review["sample_score"]["score"]
            user = [m for m in review["messages"] if m["role"] == "user"]
            lines.append(
                {
                    "index": review["index"],
                    "subset": subset,
                    "prompt": user[-1]["content"] if user else None,
                    "answer": score["prediction"],
                    "extracted": score["extracted_prediction"],
                    **score["value"],
                    "target": review["target"],
                }
            )
    return sorted(lines, key=lambda line: (line["subset"], line["index"]))  # EvalScope writes them as they finish
