"""Runs in EvalScope's own environment, never in omni's: checks the datasets, then runs EvalScope against a server.

`omni eval --eval-backend evalscope` starts ``PYTHON -I evalscope_runner.py`` and talks to it in JSON lines: on
stdin first ``{"datasets", "dataset_args"}``, answered on stdout with ``{"evalscope": VERSION}`` or ``{"error": ...}``
(before any model loads); then ``{"api_url", "api_key", "runs": {LABEL: SERVED_MODEL}, "limit",
"generation_config", "eval_batch_size", "work_dir"}``, answered with ``{"done": LABEL}`` after each run's
TaskConfig has run (its reports in WORK_DIR/reports/LABEL, per-sample reviews in WORK_DIR/reviews/LABEL).
Everything EvalScope prints goes to stderr, so stdout carries only these lines. Imports only EvalScope and the
standard library.
"""

import difflib
import json
import os
import sys


def main() -> int:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # EvalScope's logs and progress bars stay off the replies

    def reply(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    request = json.loads(sys.stdin.readline())
    problem = check_datasets(request["datasets"])
    if problem:
        reply({"error": problem})
        return 2
    import evalscope

    reply({"evalscope": evalscope.__version__})
    line = sys.stdin.readline()
    if not line:  # omni stopped before serving (a server that failed to start)
        return 0
    job = json.loads(line)
    from evalscope.config import TaskConfig
    from evalscope.constants import EvalType
    from evalscope.run import run_task

    for label, served_model in job["runs"].items():
        task = TaskConfig(
            model=served_model,
            model_id=label,
            eval_type=EvalType.OPENAI_API,
            api_url=job["api_url"],
            api_key=job["api_key"] or "EMPTY",
            datasets=request["datasets"],
            dataset_args=request["dataset_args"],
            limit=job["limit"],
            generation_config=job["generation_config"],
            eval_batch_size=job["eval_batch_size"],
            work_dir=job["work_dir"],
            no_timestamp=True,
        )
        run_task(task)
        reply({"done": label})
    return 0


def check_datasets(names: list) -> str:
    """Why EvalScope cannot run `names` (an unknown benchmark, with the nearest names), or '' when it can."""
    from evalscope.api.registry import BENCHMARK_REGISTRY

    known = list(BENCHMARK_REGISTRY.keys())
    for name in names:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            return f"--eval-dataset {name}: EvalScope has no such benchmark ({len(known)} known{hint})"
    return ""


if __name__ == "__main__":
    sys.exit(main())
