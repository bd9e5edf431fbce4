"""omni web's HTTP API on a real server: forms follow the installed plugins, mistakes are one readable line."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from omni.api import TunerSpec, hookimpl, option
from omni.serve.background import serving
from omni.testing import run_omni
from omni_plugin_web.app import create_app


@dataclass
class ProbeOptions:
    probe_strength: float = option(0.25, help="how hard the probe tuner pushes (a test plugin's option)")


class ProbeTunerPlugin:
    """A tuner plugin the page has never heard of."""

    @hookimpl
    def register_tuners(self, register):
        register(TunerSpec(name="probe", description="a test tuner", impl="omni.api:FullTuner", options=ProbeOptions))


@pytest.fixture
def page(tmp_path: Path):
    with serving(create_app(tmp_path / "runs")) as url, httpx.Client(base_url=url, timeout=60) as client:
        try:
            yield client
        finally:
            # Runs outlive the page by design; a test that failed midway must not leave one training.
            for run in client.get("/api/runs").json():
                if run["status"] == "running":
                    client.post(f"/api/runs/{run['name']}/stop", json={})
                    _wait_until_ended(client, run["name"])


def test_a_plugins_options_join_the_form_with_their_help_and_default(register_plugin, tmp_path: Path):
    register_plugin(ProbeTunerPlugin(), name="probe", distribution="omni-plugin-probe")
    with serving(create_app(tmp_path / "runs")) as url, httpx.Client(base_url=url, timeout=60) as page:
        tuners = [choice["name"] for choice in page.get("/api/choices").json()["tuners"]]
        assert "probe" in tuners  # offered where the form asks for a tuner

        groups = page.post("/api/form", json={"command": "sft", "values": {"tuner": "probe"}}).json()["groups"]
        probe = next(g for g in groups if g["name"] == "probe")
        assert probe["title"] == "tuner 'probe' options (omni-plugin-probe)" and probe["selected_by"] == "tuner"
        (field,) = probe["fields"]
        assert (field["flag"], field["type"], field["default"]) == ("--probe-strength", "float", 0.25)
        assert field["help"] == "how hard the probe tuner pushes (a test plugin's option)"

        # Without the tuner selected its options are not in the form; the command's own are, sectioned.
        plain = page.post("/api/form", json={"command": "sft", "values": {"tuner": "full"}}).json()["groups"]
        assert all(g["name"] != "probe" for g in plain)
        own = {f["name"]: f for f in plain[0]["fields"]}
        assert own["learning_rate"]["section"] == "The training loop" and own["tuner"]["selects"] == "tuners"

        preview = page.post(
            "/api/preview", json={"command": "sft", "values": {"tuner": "probe", "probe_strength": 0.5}}
        )
        assert preview.json()["command"] == "omni sft --tuner probe --probe-strength 0.5"
        assert preview.json()["yaml"] == "tuner: probe\nprobe_strength: 0.5\n"


def _wait_until_ended(page: httpx.Client, name: str) -> dict:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        run = page.get(f"/api/runs/{name}").json()
        if run["status"] != "running":
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {name} did not end: {run['log'][-2000:]}")


def test_bad_input_is_one_readable_line_and_the_page_keeps_working(page: httpx.Client, tmp_path: Path):
    # Refused before anything starts: a 400 with one line saying what is wrong.
    for path, body, expected in [
        ("/api/form", {"command": "sft", "values": {"tuner": "lorra"}}, "tuner 'lorra' is not installed"),
        ("/api/form", {"command": "rm -rf", "values": {}}, "command: one of sft, pt, rlhf, eval, export"),
        ("/api/runs", {"command": "sft", "values": {"learning_rat": 1}}, "unknown option 'learning_rat'"),
        ("/api/runs", {"command": "sft", "values": {}, "name": "../escape"}, "run name '../escape'"),
        ("/api/chat/load", {"adapter": str(tmp_path / "missing")}, "no such folder"),
        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}, "load a model first"),
        ("/api/runs/nobody/stop", {}, "no run named 'nobody'"),
    ]:
        response = page.post(path, json=body)
        assert response.status_code == 400 and expected in response.json()["error"], (path, response.text)

    # Found by omni itself once the run starts (both runs at once): the run fails with omni's one-line error.
    missing_model = tmp_path / "no-such-model"
    broken = tmp_path / "broken.jsonl"
    good_row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    broken.write_text(json.dumps(good_row) + "\n" + '{"messages": [{"role": "user", "content": "cut off\n')
    for name, values in [("no-model", {"model": str(missing_model)}), ("broken", {"dataset": [str(broken)]})]:
        started = page.post("/api/runs", json={"command": "sft", "values": values, "name": name})
        assert started.status_code == 200, started.text
    run = _wait_until_ended(page, "no-model")
    assert run["status"] == "failed" and str(missing_model) in run["error"] and "Traceback" not in run["log"]
    run = _wait_until_ended(page, "broken")
    assert run["status"] == "failed" and f"{broken}:2" in run["error"], run["error"]

    # The page goes on: both runs are listed with their errors, and a form still builds.
    assert {r["name"]: r["status"] for r in page.get("/api/runs").json()}["broken"] == "failed"
    assert page.post("/api/form", json={"command": "sft", "values": {}}).status_code == 200


def test_a_stopped_run_resumes_from_its_checkpoint(page: httpx.Client, tiny_model_dir: Path, tmp_path: Path):
    data = tmp_path / "hi.jsonl"
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    data.write_text((json.dumps(row) + "\n") * 4)
    values = {"model": str(tiny_model_dir), "dataset": [str(data)], "max_steps": 100_000, "save_steps": 1}
    assert page.post("/api/runs", json={"command": "sft", "values": values, "name": "long"}).status_code == 200
    deadline = time.monotonic() + 240
    while not page.get("/api/runs/long").json()["checkpoints"]:
        assert time.monotonic() < deadline and page.get("/api/runs/long").json()["status"] == "running"
        time.sleep(0.5)
    assert page.post("/api/runs/long/stop", json={}).status_code == 200
    stopped = _wait_until_ended(page, "long")
    assert stopped["status"] == "stopped" and stopped["error"] is None

    checkpoint = stopped["checkpoints"][0]  # "checkpoint-N", resumed by name from the run's output
    resumed_at = int(checkpoint.split("-")[1])
    assert page.post("/api/runs/long/resume", json={"checkpoint": checkpoint}).status_code == 200
    assert page.get("/api/runs/long").json()["status"] == "running"
    log = Path(stopped["output"]) / "logging.jsonl"
    deadline = time.monotonic() + 240
    while not [r for r in map(json.loads, log.read_text().splitlines()) if r.get("event") == "train_begin"][1:]:
        run = page.get("/api/runs/long").json()
        assert time.monotonic() < deadline and run["status"] == "running", run["log"][-2000:]
        time.sleep(0.5)
    begins = [r for r in map(json.loads, log.read_text().splitlines()) if r.get("event") == "train_begin"]
    assert begins[-1]["step"] == resumed_at  # training picked up where the checkpoint left it
    page.post("/api/runs/long/stop", json={})
    assert _wait_until_ended(page, "long")["status"] == "stopped"


def test_share_links_and_a_taken_port_are_refused_in_one_line(capsys, tmp_path: Path):
    assert run_omni("web", "--share", "--runs-dir", str(tmp_path)) == 2
    assert capsys.readouterr().err.splitlines() == [
        "omni: error: --share: public share links are not supported (omni works offline); use --host 0.0.0.0 on a "
        "network you trust, or an SSH tunnel (ssh -L 7860:127.0.0.1:7860 HOST)"
    ]
    with serving(create_app(tmp_path / "runs")) as url:
        port = url.rsplit(":", 1)[1]
        assert run_omni("web", "--port", port, "--runs-dir", str(tmp_path)) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"omni: error: --host 127.0.0.1 --port {port}: cannot listen there")


def test_other_pages_and_foreign_host_names_cannot_start_anything(page: httpx.Client):
    """What a page on another site (or a DNS-rebound name) could send to 127.0.0.1 is refused before it acts."""
    body = json.dumps({"command": "sft", "values": {"dataset": ["identity#4"], "max_steps": 1}})
    # A cross-site form or no-cors fetch can only send "simple" bodies: text/plain, form data.
    plain = page.post("/api/runs", content=body, headers={"content-type": "text/plain"})
    assert (plain.status_code, plain.json()) == (415, {"error": "only application/json requests change anything"})
    foreign = page.post(
        "/api/runs", content=body, headers={"content-type": "application/json", "origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "https://evil.example" in foreign.json()["error"]
    rebound = page.get("/api/runs", headers={"host": "evil.example:7860"})
    assert rebound.status_code == 403 and "evil.example" in rebound.json()["error"]
    assert page.get("/api/runs").json() == []  # nothing was started, and the page's own requests still work
    own_origin = f"http://{urlsplit(str(page.base_url)).netloc}"
    preview = page.post(
        "/api/preview", json={"command": "sft", "values": {"max_steps": 1}}, headers={"origin": own_origin}
    )
    assert preview.json()["command"] == "omni sft --max-steps 1"
