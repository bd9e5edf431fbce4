"""The built-in benchmarks read their public file layouts, prompt and score; mistakes name the file and line."""

from __future__ import annotations

import csv
import json

import pytest
from omni.api import DataError, OmniError
from omni.plugins import load_plugins
from omni_plugin_eval.evaluate import Answer, Results, resolve_benchmarks, summarize
from omni_plugin_eval.report import write_report


@pytest.fixture(scope="module")
def registry():
    return load_plugins({"OMNI_PLUGINS": "eval"}).registry


def _resolve(registry, *values, data_dir="eval_data", limit=None):
    return resolve_benchmarks(list(values), registry, data_dir=str(data_dir), limit=limit)


def test_mmlu_release_folder_one_subset_per_subject(registry, tmp_path):
    test = tmp_path / "mmlu" / "data" / "test"
    test.mkdir(parents=True)
    for subject, rows in {
        "astronomy": [["Which is a planet?", "Mars", "Moon", "Sun", "Io", "A"]],
        "virology": [["What causes flu?", "Bacteria", "A virus", "Fungi", "Cold", "B"]] * 2,
    }.items():
        with (test / f"{subject}_test.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    (bench,) = _resolve(registry, f"mmlu={tmp_path / 'mmlu'}")
    assert [r["subset"] for r in bench.rows] == ["astronomy", "virology", "virology"]
    assert bench.prompts[0]["messages"][0]["content"].splitlines()[:2] == ["Which is a planet?", "A. Mars"]
    assert bench.instance.score("A. Mars", bench.rows[0])["accuracy"] == 1.0
    assert bench.instance.score("(B) Moon", bench.rows[0]) == {"accuracy": 0.0, "extracted": "B"}


def test_ceval_and_arc_layouts(registry, tmp_path):
    val = tmp_path / "ceval" / "val"
    val.mkdir(parents=True)
    (val / "law_val.csv").write_text(
        "id,question,A,B,C,D,answer,explanation\n0,法律问题,甲,乙,丙,丁,C,\n", encoding="utf-8"
    )
    arc = tmp_path / "ARC-Challenge-Test.jsonl"
    question = {
        "stem": "Which is hardest?",
        "choices": [{"text": t, "label": str(i + 1)} for i, t in enumerate(["Talc", "Diamond", "Gold"])],
    }
    arc.write_text(json.dumps({"id": "q1", "question": question, "answerKey": "2"}) + "\n")
    ceval, arc_bench = _resolve(registry, f"ceval={tmp_path / 'ceval'}", str(arc))  # a lone ARC file is recognised
    assert ceval.rows[0]["subset"] == "law" and ceval.rows[0]["answer"] == "C"
    assert arc_bench.spec.name == "arc" and arc_bench.rows[0]["answer"] == "B"  # labels 1-3 shown as A-C
    assert arc_bench.instance.score("B", arc_bench.rows[0])["accuracy"] == 1.0


def test_gsm8k_answers_checked_with_math_verify(registry, tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(
        json.dumps({"question": "Tom has 3 boxes of 4 pens. How many pens?", "answer": "3*4=12\n#### 12"}) + "\n"
    )
    (bench,) = _resolve(registry, str(path))
    assert bench.spec.name == "gsm8k"
    score = bench.instance.score
    assert score("3 boxes times 4 is 12.\n#### 12", bench.rows[0])["accuracy"] == 1.0
    assert score("The answer is $\\boxed{12.0}$", bench.rows[0])["accuracy"] == 1.0
    assert score("#### 13", bench.rows[0]) == {"accuracy": 0.0, "extracted": "13"}


def test_qa_exact_match_and_f1(registry, tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"question": "Who wrote Hamlet?", "answers": ["William Shakespeare", "Shakespeare"]}) + "\n"
    )
    (bench,) = _resolve(registry, f"qa={path}")
    assert bench.instance.score("Shakespeare.", bench.rows[0])["exact_match"] == 1.0
    partial = bench.instance.score("the poet William Blake", bench.rows[0])
    assert partial["exact_match"] == 0.0 and partial["f1"] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("benchmark", "row"),
    [
        ("gsm8k", {"question": "2+2?", "answer": "#### 4"}),
        ("qa", {"question": "Capital of France?", "answer": "Paris"}),
        ("mcq", {"question": "2+2?", "A": "3", "B": "4", "answer": "B"}),
    ],
)
def test_every_layout_takes_the_subset_from_the_row_else_from_its_file(registry, tmp_path, benchmark, row):
    folder = tmp_path / benchmark
    folder.mkdir()
    (folder / "easy.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "subject": "sums"}) + "\n")
    (folder / "hard.jsonl").write_text(json.dumps({**row, "category": "algebra"}) + "\n")
    (bench,) = _resolve(registry, f"{benchmark}={folder}")
    assert [r["subset"] for r in bench.rows] == ["easy", "sums", "algebra"]
    (single,) = _resolve(registry, f"{benchmark}={folder / 'easy.jsonl'}")
    assert [r["subset"] for r in single.rows] == ["default", "sums"]


def test_media_mcq_rows_carry_absolute_media_paths(registry, tmp_path):
    import numpy as np
    from omni.testing.synthetic import draw_shape

    draw_shape(np.random.default_rng(0), (255, 0, 0), 32).save(tmp_path / "red.png")
    (tmp_path / "q.jsonl").write_text(
        json.dumps({"question": "What color?", "choices": ["red", "blue"], "answer": 0, "image": "red.png"}) + "\n"
    )
    (bench,) = _resolve(registry, str(tmp_path / "q.jsonl"))
    assert bench.spec.name == "media-mcq"
    prompt = bench.prompts[0]
    assert prompt["messages"][0]["content"].startswith("<image>What color?") and prompt["images"] == [
        str(tmp_path / "red.png")
    ]


def test_missing_data_says_where_it_looked(registry, tmp_path, omni_cli):
    with pytest.raises(
        OmniError, match=r"benchmark 'gsm8k': no data at .*nowhere/gsm8k \(looked for that file or folder"
    ):
        _resolve(registry, "gsm8k", data_dir=tmp_path / "nowhere")
    done = omni_cli("eval", "--eval-dataset", f"mmlu={tmp_path / 'missing'}", env={"OMNI_PLUGINS": "eval"})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "does not exist; benchmark 'mmlu' reads the MMLU release folder" in done.stderr


def test_bad_row_names_file_and_line(registry, tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(
        json.dumps({"question": "q", "A": "x", "B": "y", "answer": "A"})
        + "\n"
        + json.dumps({"question": "q", "A": "x", "B": "y", "answer": "E"})
        + "\n"
    )
    with pytest.raises(DataError, match=rf"{path}:2: answer 'E' is not one of the options A, B"):
        _resolve(registry, f"mcq={path}")


def test_eval_limit_takes_the_first_rows(registry, general_mcq):
    (bench,) = _resolve(registry, f"mcq={general_mcq}", limit=3)
    assert len(bench.rows) == 3 and bench.rows[0]["question"] == "What is the capital of France?"


def test_report_files_are_complete_and_compare_runs(registry, general_mcq, tmp_path):
    (bench,) = _resolve(registry, f"mcq={general_mcq}", limit=4)
    results = Results([bench])
    for run, right in (("base", 1), ("tuned", 3)):
        results.answers[run] = {
            "mcq": [
                Answer(i, "default", row["answer"] if i < right else "Z", None, {"accuracy": float(i < right)})
                for i, row in enumerate(bench.rows)
            ]
        }
    written = write_report(tmp_path / "out", results, summarize(results), {"model": "m"})
    summary = json.loads(written["summary"].read_text())["results"]
    assert summary["base"]["mcq"]["score"] == 0.25 and summary["tuned"]["mcq"]["correct"] == 3
    assert written["chart"].read_bytes().startswith(b"\x89PNG")
    page = written["page"].read_text()
    assert "<th>base</th><th>tuned</th>" in page and "0.7500 (4)" in page
    assert len((tmp_path / "out" / "answers" / "tuned" / "mcq.jsonl").read_text().splitlines()) == 4
    assert not list((tmp_path / "out").rglob(".*tmp*"))  # nothing left half-written
