"""omni eval's multiple-choice scores on the real SmolLM2-135M-Instruct agree with lm-evaluation-harness's on the same
file and prompt, and with its own scores through `omni serve` (--eval-url)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from omni_plugin_eval.benchmarks.choice import INSTRUCTION

from tests.helpers import run_omni

from .conftest import GENERAL_KNOWLEDGE

ANSWER_TOKENS = "16"


@pytest.fixture(scope="module")
def in_process(smollm2: Path, general_mcq: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`omni eval` of the general-knowledge file with the pt engine in-process: its summary.json."""
    out = tmp_path_factory.mktemp("in-process")
    argv = ["eval", "--model", str(smollm2), "--eval-dataset", f"mcq={general_mcq}", "--max-new-tokens", ANSWER_TOKENS]
    done = run_omni(*argv, "--eval-output-dir", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


def _only(summary: dict) -> dict:
    (by_benchmark,) = summary["results"].values()
    return by_benchmark["mcq"]


def test_accuracy_agrees_with_lm_eval_harness(in_process, smollm2, general_mcq, tmp_path, monkeypatch):
    """lm-eval's `hf` model answers the same chat-templated prompts greedily; its regex filter takes the first
    standalone option letter, as omni's multiple choice does."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    prompt = "{{question}}\n" + "".join(f"{x}. {{{{{x}}}}}\n" for x in "ABCD") + INSTRUCTION
    task = {
        "task": "omni_general_mcq",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(general_mcq)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": prompt,
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": [], "max_gen_toks": int(ANSWER_TOKENS), "do_sample": False},
        "filter_list": [
            {
                "name": "letter",
                "filter": [
                    {"function": "regex", "regex_pattern": r"\b(A|B|C|D)\b", "group_select": 0},
                    {"function": "take_first"},
                ],
            }
        ],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    }
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "omni_general_mcq.yaml").write_text(json.dumps(task))  # JSON is YAML
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={smollm2},dtype=float32",
        tasks=["omni_general_mcq"],
        task_manager=TaskManager(include_path=str(tasks)),
        apply_chat_template=True,
        batch_size=len(GENERAL_KNOWLEDGE),
        device="cpu",
    )
    theirs = results["results"]["omni_general_mcq"]["exact_match,letter"] * len(GENERAL_KNOWLEDGE)
    ours = _only(in_process)
    print(f"omni {ours['correct']:g}/{ours['count']}, lm-eval {theirs:g}/{len(GENERAL_KNOWLEDGE)}", file=sys.stderr)
    assert ours["count"] == len(GENERAL_KNOWLEDGE)
    assert 0 < ours["correct"] < len(GENERAL_KNOWLEDGE)  # a score that can disagree
    assert abs(ours["correct"] - theirs) <= 1


def test_eval_url_against_omni_serve_equals_in_process(in_process, smollm2, general_mcq, tmp_path):
    from omni.infer.remote import ServerProcess, free_port

    port = free_port()
    server = ServerProcess(
        [str(Path(sys.executable).with_name("omni")), "serve", "--model", str(smollm2), "--port", str(port)],
        f"http://127.0.0.1:{port}",
        timeout_s=300,
    )
    try:
        out = tmp_path / "served"
        argv = ["eval", "--eval-url", server.url, "--eval-dataset", f"mcq={general_mcq}"]
        done = run_omni(*argv, "--max-new-tokens", ANSWER_TOKENS, "--eval-output-dir", str(out), timeout=900)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads((out / "summary.json").read_text())
    assert served["engine"].startswith("openai-api")
    assert _only(served)["correct"] == _only(in_process)["correct"]
    assert _only(served)["subsets"] == _only(in_process)["subsets"]
