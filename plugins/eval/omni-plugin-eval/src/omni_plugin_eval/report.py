"""What `omni eval` writes: every answer with its score, a summary, and a chart comparing the runs (PNG and HTML).

    EVAL_OUTPUT_DIR/
      answers/RUN/BENCHMARK.jsonl   one line per question: the prompt, the answer, what was read from it, metrics
      summary.json                  per run and benchmark: headline score, counts, every metric, the same per subset
      report.png                    the runs' scores side by side, per benchmark (and subset)
      report.html                   the chart and the tables in one self-contained page

Every file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from omni.api import atomic_text_file

from omni_plugin_eval.evaluate import Results

SUMMARY = "summary.json"
CHART = "report.png"
PAGE = "report.html"
MAX_SUBSET_BARS = 8  # benchmarks with more subsets than this chart their overall score only


def write_report(output_dir: Path, results: Results, summary: dict[str, Any], meta: dict[str, Any]) -> dict[str, Path]:
    """Write the answers, the summary, the chart and the page into `output_dir`; returns their paths by kind."""
    for run, by_benchmark in results.answers.items():
        for benchmark in results.benchmarks:
            lines = []
            for answer in by_benchmark[benchmark.label]:
                lines.append(
                    {
                        "index": answer.index,
                        "subset": answer.subset,
                        "prompt": benchmark.prompts[answer.index]["messages"][-1]["content"],
                        "answer": answer.answer,
                        "extracted": answer.extracted,
                        **answer.metrics,
                        "row": benchmark.rows[answer.index],
                    }
                )
            write_answers(output_dir, run, benchmark.label, lines)
    return write_summary(output_dir, summary, meta)


def write_answers(output_dir: Path, run: str, benchmark: str, lines: list[dict[str, Any]]) -> Path:
    """One run's answers to one benchmark as answers/RUN/BENCHMARK.jsonl."""
    target = output_dir / "answers" / _safe(run) / f"{_safe(benchmark)}.jsonl"
    with atomic_text_file(target) as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    return target


def write_summary(output_dir: Path, summary: dict[str, Any], meta: dict[str, Any]) -> dict[str, Path]:
    """summary.json, the chart and the page (the answers are written already); returns every path by kind."""
    summary_path = output_dir / SUMMARY
    with atomic_text_file(summary_path) as handle:
        handle.write(json.dumps({**meta, "results": summary}, indent=2, ensure_ascii=False, default=str) + "\n")
    png = chart_png(summary)
    _write_bytes(output_dir / CHART, png)
    with atomic_text_file(output_dir / PAGE) as handle:
        handle.write(html_page(summary, png, meta))
    return {
        "summary": summary_path,
        "chart": output_dir / CHART,
        "page": output_dir / PAGE,
        "answers": output_dir / "answers",
    }


def _bars(summary: dict[str, Any]) -> tuple[list[str], list[str], dict[str, list[float]]]:
    """(group labels, run labels, scores by run in group order): each benchmark, then its subsets when few."""
    runs = list(summary)
    first = summary[runs[0]]
    groups: list[tuple[str, str | None]] = []
    for label, entry in first.items():
        groups.append((label, None))
        if 1 < len(entry["subsets"]) <= MAX_SUBSET_BARS:
            groups.extend((label, subset) for subset in entry["subsets"])
    names = [
        f"{label} ({first[label]['metric']})" if subset is None else f"{label}/{subset}" for label, subset in groups
    ]
    scores = {
        run: [
            summary[run][label]["score"] if subset is None else summary[run][label]["subsets"][subset]["score"]
            for label, subset in groups
        ]
        for run in runs
    }
    return names, runs, scores


def chart_png(summary: dict[str, Any]) -> bytes:
    """A grouped bar chart of every run's score per benchmark (and subset), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, runs, scores = _bars(summary)
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names) * max(1, len(runs)) ** 0.5 + 2), 4.5))
    for i, run in enumerate(runs):
        positions = [g + (i - (len(runs) - 1) / 2) * width for g in range(len(names))]
        bars = ax.bar(positions, scores[run], width, label=run)
        ax.bar_label(bars, labels=[f"{s:.2f}" for s in scores[run]], fontsize=8, padding=2)
    ax.set_xticks(
        range(len(names)), names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center"
    )
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score")
    ax.set_title("omni eval: " + " vs ".join(runs))
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def html_page(summary: dict[str, Any], png: bytes, meta: dict[str, Any]) -> str:
    """One self-contained page: the chart (inlined) and a table per benchmark with every run's scores per subset."""
    runs = list(summary)
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>omni eval report</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "</style></head><body>",
        f"<h1>omni eval</h1><p>model: {esc(str(meta.get('model', '')))}; runs: {esc(', '.join(runs))}</p>",
        f"<img alt='scores per run' src='data:image/png;base64,{base64.b64encode(png).decode()}'>",
    ]
    for label, entry in summary[runs[0]].items():
        parts.append(f"<h2>{esc(label)}</h2><p>{esc(entry['data'])}; metric: {esc(entry['metric'])}</p><table>")
        parts.append("<tr><th>subset</th>" + "".join(f"<th>{esc(run)}</th>" for run in runs) + "</tr>")
        lines = [("all", lambda run, label=label: summary[run][label])]
        lines += [(s, lambda run, label=label, s=s: summary[run][label]["subsets"][s]) for s in entry["subsets"]]
        for name, pick in lines:
            cells = "".join(f"<td>{pick(run)['score']:.4f} ({pick(run).get('count')})</td>" for run in runs)
            parts.append(f"<tr><td>{esc(name)}</td>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _safe(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", label)
