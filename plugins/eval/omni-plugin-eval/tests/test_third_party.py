"""A company's private benchmark is a small plugin: registered through `register_benchmarks`, it shows in
`omni list benchmarks` and `omni eval` runs it (here on a tiny random Llama) like a built-in one."""

from __future__ import annotations

import json

import omni_plugin_eval
from omni.api import BenchmarkSpec, hookimpl
from omni.cli.main import main


class TicketRouting:
    """Which support queue a ticket goes to: a text file of TEAM|TICKET|QUEUE lines (a private format)."""

    max_new_tokens = 4

    def __init__(self, options):
        self.options = options

    def load(self, path):
        for line in path.read_text().splitlines():
            team, ticket, queue = line.split("|")
            yield {"subset": team, "ticket": ticket, "queue": queue}

    def prompt(self, row):
        return {"messages": [{"role": "user", "content": f"Which queue gets this ticket? {row['ticket']}"}]}

    def score(self, answer, row):
        return {"accuracy": float(row["queue"] in answer.lower()), "extracted": answer.strip()[:20]}


class TicketsPlugin:
    @hookimpl
    def register_benchmarks(self, register):
        register(
            BenchmarkSpec(
                name="ticket-routing",
                description="which support queue a ticket goes to",
                impl=f"{__name__}:TicketRouting",
                layout="a text file of TEAM|TICKET|QUEUE lines",
            )
        )


def test_private_benchmark_plugin_is_listed_and_runs(register_plugin, tiny_model_dir, tmp_path, capsys):
    register_plugin(omni_plugin_eval, name="eval", distribution="omni-plugin-eval")
    register_plugin(TicketsPlugin(), name="tickets", distribution="acme-omni-tickets")
    assert main(["list", "benchmarks"]) == 0
    listed = capsys.readouterr().out
    assert "ticket-routing  [acme-omni-tickets]" in listed and "mmlu  [omni-plugin-eval]" in listed

    data = tmp_path / "tickets.txt"
    data.write_text(
        "billing|I was charged twice|billing\nbilling|Refund please|billing\nit|My laptop is broken|hardware\n"
    )
    out = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_model_dir),
                "--eval-dataset",
                f"ticket-routing={data}",
                "--eval-output-dir",
                str(out),
            ]
        )
        == 0
    )
    entry = json.loads((out / "summary.json").read_text())["results"][tiny_model_dir.name]["ticket-routing"]
    assert entry["count"] == 3 and entry["subsets"]["billing"]["count"] == 2 and entry["subsets"]["it"]["count"] == 1
    answers = [
        json.loads(line)
        for line in (out / "answers" / tiny_model_dir.name / "ticket-routing.jsonl").read_text().splitlines()
    ]
    assert [a["row"]["queue"] for a in answers] == ["billing", "billing", "hardware"]
    assert entry["correct"] == sum(a["accuracy"] for a in answers)  # the summary adds up the answers' scores
