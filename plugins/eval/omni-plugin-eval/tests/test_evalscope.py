"""`omni eval --eval-backend evalscope`: the real EvalScope (its own environment, REPO/.venv-evalscope, made by
scripts/setup.sh) against the real `omni serve` of SmolLM2-135M-Instruct, and the errors a user can make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omni_plugin_eval.benchmarks.choice import INSTRUCTION, extract_choice

from tests.helpers import OMNI, run_omni, side_environment_python, start_serving

from .conftest import GENERAL_KNOWLEDGE

ROWS = GENERAL_KNOWLEDGE[:8]
ANSWER_TOKENS = "16"
# EvalScope's general_mcq asking as omni's multiple choice does (its default prompt is in Chinese); its options
# still read "A) Berlin" where omni writes "A. Berlin".
OMNI_PROMPT = {"general_mcq": {"prompt_template": "{question}\n{choices}\n" + INSTRUCTION}}


@pytest.fixture(scope="module")
def evalscope_python() -> Path:
    return side_environment_python(".venv-evalscope", "EvalScope")


@pytest.fixture(scope="module")
def mcq_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first general-knowledge questions in the columns both EvalScope's general_mcq and omni's mcq read."""
    path = tmp_path_factory.mktemp("general_mcq") / "general_val.jsonl"
    with path.open("w") as handle:
        for question, options, answer in ROWS:
            row = {"question": question, **dict(zip("ABCD", options, strict=True)), "answer": answer}
            handle.write(json.dumps(row) + "\n")
    return path


def _error_line(done) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    return lines[-1]


def test_missing_evalscope_environment_says_how_to_create_it(mcq_file, tmp_path):
    done = run_omni(
        "eval", "--eval-backend", "evalscope", "--eval-dataset", f"general_mcq={mcq_file}",
        "--evalscope-python", str(tmp_path / "no-env" / "bin" / "python"),
    )  # fmt: skip
    line = _error_line(done)
    assert f"--evalscope-python {tmp_path / 'no-env' / 'bin' / 'python'}: no such Python" in line
    assert "python3 -m venv .venv-evalscope" in line and "constraints-evalscope.txt" in line
    # Nothing given and no `evalscope` on PATH
    bare = run_omni("eval", "--eval-backend", "evalscope", "--eval-dataset", f"general_mcq={mcq_file}",
                    env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert "--eval-backend evalscope needs EvalScope's Python, and none was found" in _error_line(bare)


def test_bad_local_paths_are_refused_before_anything_runs(mcq_file, tmp_path):
    missing = tmp_path / "nowhere"
    done = run_omni("eval", "--eval-backend", "evalscope", "--eval-dataset", f"general_mcq={missing}")
    assert _error_line(done) == f"omni: error: --eval-dataset general_mcq: its local_path {missing} does not exist"
    no_copy = run_omni("eval", "--eval-backend", "evalscope", "--eval-dataset", "gsm8k")
    assert "--eval-dataset gsm8k: give its local copy (nothing is downloaded here)" in _error_line(no_copy)
    stray = run_omni(
        "eval", "--eval-backend", "evalscope", "--eval-dataset", f"general_mcq={mcq_file}",
        "--eval-dataset-args", json.dumps({"general_qa": {"local_path": str(mcq_file)}}),
    )  # fmt: skip
    assert "--eval-dataset-args names general_qa, which --eval-dataset does not" in _error_line(stray)


def test_unknown_dataset_is_named_with_evalscopes_nearest(evalscope_python, mcq_file, tmp_path):
    done = run_omni(
        "eval", "--eval-backend", "evalscope", "--evalscope-python", str(evalscope_python),
        "--eval-dataset", f"gsm8={mcq_file}", "--eval-output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    line = _error_line(done)
    assert line.startswith("omni: error: --eval-dataset gsm8: EvalScope has no such benchmark (")
    assert "did you mean gsm8k" in line
    assert not (tmp_path / "out" / "summary.json").exists()


def _answers(folder: Path) -> dict[int, dict]:
    (file,) = folder.glob("answers/*/*.jsonl")
    return {line["index"]: line for line in map(json.loads, file.read_text().splitlines())}


@pytest.mark.slow
def test_evalscope_scores_omnis_server_and_agrees_with_native(evalscope_python, smollm2, mcq_file, tmp_path):
    """EvalScope's general_mcq (local mode) against `omni serve` of SmolLM2: omni's report carries EvalScope's numbers
    exactly, and where EvalScope and omni read an answer alike they score it alike; omni's native backend on the same
    rows, with its own prompt, lands within two of EvalScope's answers scored by omni's rule."""
    es_out, native_out = tmp_path / "evalscope", tmp_path / "native"
    common = ["--model", str(smollm2), "--max-new-tokens", ANSWER_TOKENS]
    done = run_omni(
        "eval", "--eval-backend", "evalscope", "--evalscope-python", str(evalscope_python), *common,
        "--eval-dataset", f"general_mcq={mcq_file}", "--eval-dataset-args", json.dumps(OMNI_PROMPT),
        "--eval-output-dir", str(es_out), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((es_out / "summary.json").read_text())
    assert summary["engine"].startswith("evalscope 1.14.1 via omni serve")
    (run,) = summary["results"]
    entry = summary["results"][run]["general_mcq"]
    # EvalScope's own report, folded into omni's
    report = json.loads((es_out / "evalscope" / "reports" / run / "general_mcq.json").read_text())
    (accuracy,) = [m for m in report["metrics"] if m["identity"]["name"] == "accuracy"]
    assert (entry["metric"], entry["count"], entry["score"]) == ("accuracy", len(ROWS), accuracy["score"])
    assert entry["subsets"]["default"] == {"count": len(ROWS), "metrics": {"accuracy": accuracy["score"]},
                                           "score": accuracy["score"]}  # fmt: skip
    answers = _answers(es_out)
    assert sorted(answers) == list(range(len(ROWS)))
    assert entry["correct"] == sum(a["accuracy"] for a in answers.values()) == accuracy["score"] * len(ROWS)
    assert all(a["prompt"].endswith(INSTRUCTION) for a in answers.values())
    assert (es_out / "report.png").stat().st_size > 0 and run in (es_out / "report.html").read_text()

    native = run_omni("eval", *common, "--eval-dataset", f"mcq={mcq_file}", "--eval-output-dir", str(native_out),
                      timeout=900)  # fmt: skip
    assert native.returncode == 0, native.stderr[-3000:]
    native_correct = json.loads((native_out / "summary.json").read_text())["results"][run]["mcq"]["correct"]
    omni_rule = 0
    for index, answer in answers.items():
        target = ROWS[index][2]
        ours = extract_choice(answer["answer"], list("ABCD"))
        omni_rule += ours == target
        if answer["extracted"] == ours:  # read alike: scored alike
            assert answer["accuracy"] == float(ours == target)
    print(
        f"EvalScope {entry['correct']:g}/{len(ROWS)}; its answers by omni's rule {omni_rule}/{len(ROWS)}; "
        f"omni native {native_correct:g}/{len(ROWS)}"
    )
    assert abs(omni_rule - native_correct) <= 2


def write_gsm8k_clone(folder: Path, train: int) -> Path:
    """GSM8K in the layout of its hub repository (openai/gsm8k): README.md declaring config `main`, and its splits."""
    (folder / "main").mkdir(parents=True)
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train.jsonl\n"
        "  - split: test\n    path: main/test.jsonl\n---\n"
    )
    sums = [{"question": f"What is {a} + {a}?", "answer": f"{a}+{a}={2 * a}\n#### {2 * a}"} for a in range(1, 4)]
    (folder / "main" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in sums))
    (folder / "main" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in sums[:train]))
    return folder


@pytest.mark.slow
def test_evalscope_against_a_running_server_and_its_failures_in_one_line(evalscope_python, smollm2, mcq_file, tmp_path):
    """--eval-url: EvalScope scores the model a running `omni serve` serves; a failure inside EvalScope (gsm8k's
    four-shot prompt over a train split of one row) is one line naming EvalScope's error and its log."""
    process, url, _ = start_serving(
        [str(OMNI), "serve", "--model", str(smollm2), "--served-model-name", "smol", "--port", "0"]
    )
    try:
        common = ["eval", "--eval-backend", "evalscope", "--evalscope-python", str(evalscope_python)]
        common += ["--eval-url", url, "--eval-limit", "2", "--max-new-tokens", "8"]
        done = run_omni(*common, "--eval-dataset", f"general_mcq={mcq_file}", "--eval-output-dir", str(tmp_path / "a"))
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((tmp_path / "a" / "summary.json").read_text())
        assert (summary["engine"], summary["model"]) == (f"evalscope 1.14.1 via {url}", "smol")
        assert summary["results"]["smol"]["general_mcq"]["count"] == 2
        assert len(_answers(tmp_path / "a")) == 2

        clone = write_gsm8k_clone(tmp_path / "gsm8k", train=1)
        failed = run_omni(*common, "--eval-dataset", f"gsm8k={clone}", "--eval-output-dir", str(tmp_path / "b"))
        line = _error_line(failed)
        assert line.startswith("omni: error: EvalScope stopped (exit status 1): AssertionError: The dataset only")
        assert f"(its log: {tmp_path / 'b' / 'evalscope' / 'evalscope.log'})" in line
    finally:
        process.terminate()
        process.wait(timeout=60)
