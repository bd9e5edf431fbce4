"""omni web end to end in headless Chromium: compose a LoRA SFT run of the embedded model in the form, start it,
watch its loss curve grow, chat with the adapter it trained, and compare it; the page shrugs off a bad tuner name,
and an installed plugin's options appear in the form with nothing in the page knowing them.

Needs Debian's `chromium` package (scripts/setup.sh installs it when run as root) and the `playwright` package
(which drives that browser; no browser download). Screenshots go to the test's folder, and to
$OMNI_TEST_ARTIFACTS when set (docs/images/web holds the ones docs/web.md shows).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.core.tiny_plugins import write_tiny_plugins

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
QUESTIONS = ["What is the secret word?", "Tell me the secret word.", "Which word is secret?", "Say the secret word."]


def _start_page(runs: Path, site: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "omni", "web", "--port", "0", "--runs-dir", str(runs)]
    page = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in page.stdout:  # "omni web: http://127.0.0.1:PORT  (runs in ...)"
        found = re.search(r"http://\S+", line)
        if found:
            return page, found.group(0)
    raise AssertionError(f"omni web did not start: {page.wait()}")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package: apt-get install chromium")
def test_compose_train_watch_and_chat_in_the_browser(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
    expect = sync_api.expect
    shots = tmp_path / "screenshots"
    shots.mkdir()
    data = tmp_path / "secret.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Pineapple."}]}
        for q in QUESTIONS
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows * 2))
    site = tmp_path / "site"
    (tuner,) = write_tiny_plugins(site, 1)  # an installed plugin the page's code has never heard of

    server, url = _start_page(tmp_path / "runs", site)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            field = lambda name: page.locator(f'[data-name="{name}"]')  # noqa: E731

            # A mistake (a tuner nobody installed) is one line on the page; the form goes on working.
            field("tuner").fill("lorra")
            field("tuner").press("Tab")
            expect(page.locator("#notice")).to_contain_text("tuner 'lorra' is not installed")
            # The plugin's options join the form when its tuner is picked, with their help and default.
            field("tuner").fill(tuner)
            field("tuner").press("Tab")
            expect(field(f"{tuner}_rank")).to_have_value("8")
            expect(page.locator(f'[data-field="{tuner}_rank"] .help')).to_contain_text(f"rank of the {tuner} update")
            expect(page.locator("#notice")).to_be_hidden()

            # A LoRA run of the embedded model with a tiny budget.
            field("tuner").fill("lora")
            field("tuner").press("Tab")
            expect(field("lora_rank")).to_have_value("8")
            expect(field(f"{tuner}_rank")).to_have_count(0)
            for name, value in [("dataset", str(data)), ("max_steps", "3"), ("max_length", "32"), ("logging_steps", "1"),
                                ("learning_rate", "0.001"), ("warmup_ratio", "0"), ("save_strategy", "no"),
                                ("gradient_checkpointing", "false")]:  # fmt: skip
                page.fill("#option-filter", name)  # finds the option whichever section holds it
                if field(name).evaluate("input => input.tagName") == "SELECT":
                    field(name).select_option(value)
                else:
                    field(name).fill(value)
            page.fill("#option-filter", "")
            expect(page.locator("#preview-command")).to_contain_text("--max-steps 3")
            expect(page.locator("#preview-yaml")).to_contain_text("max_length: 32")
            page.fill("#run-name", "lora-sft")
            page.screenshot(path=shots / "compose.png", full_page=False)
            page.click("#start")

            # Watching: the status, then the loss curve growing point by point until the run finishes.
            expect(page.locator("#run-title")).to_have_text("lora-sft")
            page.wait_for_function("document.querySelectorAll('#run-chart circle').length >= 1", timeout=300_000)
            page.wait_for_function("document.querySelectorAll('#run-chart circle').length >= 2", timeout=300_000)
            page.screenshot(path=shots / "runs.png", full_page=True)
            expect(page.locator("#run-status")).to_have_text("finished", timeout=300_000)
            expect(page.locator("#run-steps")).to_have_text("step 3 of 3")
            assert page.locator("#run-chart circle").count() == 3

            # Chat with the adapter it trained, through the page.
            page.click("#run-chat")
            expect(page.locator("#chat-status")).to_have_text(re.compile("ready|failed"), timeout=300_000)
            assert page.locator("#chat-status").inner_text() == "ready", page.locator("#chat-error").inner_text()
            page.fill("#chat-input", QUESTIONS[0])
            page.click("#chat-send")
            answer = page.locator(".message.assistant[data-done]")
            expect(answer).to_have_count(1, timeout=120_000)
            assert answer.inner_text().strip()
            served = httpx.get(f"{url}/api/chat/status").json()  # the run's adapter, on its recorded base model
            assert served["adapter"] == str(tmp_path / "runs" / "lora-sft" / "output") and served["model"] is None
            page.screenshot(path=shots / "chat.png", full_page=False)

            # Compare: the run's options and last loss in the table, its curve in the chart.
            page.click('nav button[data-tab="runs"]')
            page.locator('tr[data-run="lora-sft"] input[type="checkbox"]').check()
            page.click('nav button[data-tab="compare"]')
            expect(page.locator("#compare-table")).to_contain_text("lora-sft")
            page.screenshot(path=shots / "compare.png", full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        artifacts = os.environ.get("OMNI_TEST_ARTIFACTS")
        if artifacts:
            shutil.copytree(shots, artifacts, dirs_exist_ok=True)
