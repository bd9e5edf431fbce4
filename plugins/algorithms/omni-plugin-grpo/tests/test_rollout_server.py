"""Rollouts from an `omni rollout` server in another process (`--rollout-engine server`, ms-swift's `--vllm_mode
server --vllm_server_host H --vllm_server_port P`): the flags' spellings, the one-line refusal when no rollout server
answers, and (slow) a GRPO run whose weights reach a vLLM rollout server every step."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from omni.infer.remote import free_port
from omni_plugin_grpo.options import DapoOptions, GrpoOptions

from tests.helpers import run_omni, start_serving

from .test_training import argv


def parsed(*flags: str) -> GrpoOptions:
    from omni.api import get_registry
    from omni.cli.invocation import parse_invocation

    registry = get_registry()
    command = registry.get("commands", "rlhf").spec
    invocation = parse_invocation(command, ["--algo", "grpo", "--reward-funcs", "length", *flags], registry)
    return invocation.selected["algo"][0].options.with_rollout_resolved()


@pytest.mark.parametrize(
    ("flags", "engine", "url"),
    [
        ((), "pt", None),
        (("--rollout-engine", "server"), "server", "http://127.0.0.1:8000"),
        (("--rollout-server-url", "http://node7:9000"), "server", "http://node7:9000"),
        (("--vllm_server_base_url", "http://node7:9000"), "server", "http://node7:9000"),
        (
            ("--vllm_mode", "server", "--vllm_server_host", "node7", "--vllm_server_port", "8100"),
            "server",
            "http://node7:8100",
        ),
        (("--use_vllm", "true", "--vllm_mode", "server"), "server", "http://127.0.0.1:8000"),
        (("--vllm_server_host", "::1"), "server", "http://[::1]:8000"),
        (("--vllm_mode", "colocate"), "vllm", None),
        (("--use_vllm", "true"), "vllm", None),
        (("--rollout-engine", "vllm"), "vllm", None),
    ],
)
def test_ms_swift_spellings_fold_into_the_rollout_engine(flags, engine, url):
    options = parsed(*flags)
    assert (options.rollout_engine, options.rollout_server_url) == (engine, url)


def test_a_member_keeps_its_own_options_class_and_conflicts_are_refused():
    resolved = DapoOptions(vllm_mode="server").with_rollout_resolved()
    assert type(resolved) is DapoOptions and resolved.rollout_engine == "server"
    with pytest.raises(Exception, match="--rollout-engine vllm generates in this process"):
        GrpoOptions(rollout_engine="vllm", vllm_mode="server").with_rollout_resolved()
    with pytest.raises(Exception, match="--vllm-mode colocate rolls out with vllm"):
        GrpoOptions(rollout_engine="sglang", vllm_mode="colocate").with_rollout_resolved()


def test_no_rollout_server_is_one_line_naming_the_url(tiny_model, token_task, tmp_path):
    port = free_port()
    flags = ["--vllm_mode", "server", "--vllm_server_port", str(port), "--vllm_server_timeout", "0"]
    result = run_omni(*argv("grpo", tiny_model, token_task, tmp_path / "out", *flags))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f"no rollout server answers at http://127.0.0.1:{port}" in last and "omni rollout" in last, result.stderr


def test_rollouts_through_a_rollout_server_are_the_in_process_engines_token_for_token(tiny_model_dir, one_thread):
    """Greedy single-turn and multi-turn (calculator) rollouts of the tiny Llama from a pt rollout server over HTTP:
    the same prompt and completion ids, env masks included, as from the pt engine in this process."""
    from omni.api import PtEngine, RemoteEngine, Row, TemplateCliOptions
    from omni.serve.app import ServedModels, WeightsRoute, create_app
    from omni.serve.background import serving
    from omni.template import get_template
    from omni_plugin_grpo.environments.calculator import Calculator
    from omni_plugin_grpo.multiturn import EnvironmentRollout, with_tools
    from omni_plugin_grpo.rollout import EngineRollout, encode_prompts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    template = get_template("llama3", AutoTokenizer.from_pretrained(tiny_model_dir))
    tokenizer, end = template.tokenizer, template.tokenizer.eos_token_id
    rows = [
        with_tools(Row({"messages": [{"role": "user", "content": question}]}, "q.jsonl", i), Calculator.tools)
        for i, question in enumerate(["What is 6 * 7?", "What is 2 + 2?"], 1)
    ]
    prompts, _ = encode_prompts(template, rows)
    local_engine = PtEngine.from_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), tokenizer, template)
    served = PtEngine(str(tiny_model_dir), template_options=TemplateCliOptions(template="llama3"))
    with serving(create_app(served, ServedModels("policy"), weights=WeightsRoute())) as url:
        remote = RemoteEngine.rollout_server(url)
        for engine, name in ((local_engine, "pt"), (remote, "server")):
            options = GrpoOptions(max_completion_length=12, temperature=0.0, rollout_engine=name)
            single = EngineRollout(engine, prompts, end, options)
            turns = EnvironmentRollout(single, template, Calculator, max_turns=2, decode=tokenizer.decode)
            outs = [rollout.generate([0, 0, 1], [rows[0], rows[0], rows[1]]) for rollout in (single, turns)]
            if name == "pt":
                expected = outs
        remote.close()
    served.close()
    for got, want in zip(outs, expected, strict=True):
        assert got.prompt_ids == want.prompt_ids and got.completion_ids == want.completion_ids
        assert got.extras == want.extras
    assert all(outs[0].completion_ids) and outs[0].prompt_ids[0] == prompts[0]


@pytest.mark.parametrize("ahead", [False, True])
def test_weights_go_to_the_server_before_each_steps_rollouts_or_one_step_ahead(ahead, tiny_model, token_task, tmp_path):
    """What the server sees of 4 GRPO steps (2 prompts x 8 completions each): synchronously, new weights then that
    step's rollouts, every step; with --async-generate, the second step's rollouts right after the first's (with
    the same weights, while step 1 trains), then each step's weights followed by the next step's rollouts, and
    nothing after the last step's (it has no next)."""
    from omni.api import PtEngine
    from omni.cli.main import main
    from omni.serve.app import ServedModels, WeightsRoute, create_app
    from omni.serve.background import serving

    class Recording(PtEngine):
        async def generate_async(self, request):
            self.events.append("rollout")
            return await super().generate_async(request)

        def load_weights_file(self, path):
            self.events.append("weights")
            super().load_weights_file(path)

    engine = Recording(str(tiny_model))
    engine.events = []
    out = tmp_path / "out"
    flags = ["--max-steps", "4", "--logging-steps", "1", "--rollout-engine", "server"]
    with serving(create_app(engine, ServedModels("policy"), weights=WeightsRoute())) as url:
        extra = ["--async-generate"] if ahead else []
        assert main(argv("grpo", tiny_model, token_task, out, *flags, "--rollout-server-url", url, *extra)) == 0
    engine.close()
    runs = [[engine.events[0], 1]]
    for event in engine.events[1:]:
        runs[-1][1] += event == runs[-1][0]
        if event != runs[-1][0]:
            runs.append([event, 1])
    if ahead:
        expected = [["weights", 1], ["rollout", 4], ["weights", 1], ["rollout", 2], ["weights", 1], ["rollout", 2]]
    else:
        expected = [["weights", 1], ["rollout", 2]] * 4
    assert runs == expected
    records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert len([r for r in records if "reward" in r]) == 4


def test_async_generate_needs_an_engine_of_its_own_and_one_batch_per_step(tiny_model, token_task, tmp_path, capsys):
    from omni.cli.main import main

    for extra, words in (
        ([], "not with the training model itself"),
        (["--rollout-engine", "server", "--num-iterations", "2"], "one generation batch per optimizer step"),
    ):
        assert main(argv("grpo", tiny_model, token_task, tmp_path / "out", "--async-generate", *extra)) != 0
        assert words in capsys.readouterr().err


def prompt_logprobs(url: str, ids: list[list[int]]) -> list[list[float]]:
    body = {"model": "policy", "prompt": ids, "echo": True, "logprobs": 0, "max_tokens": 0}
    answer = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return [choice["logprobs"]["token_logprobs"][1:] for choice in answer.json()["choices"]]


def model_logprobs(folder: Path, ids: list[list[int]]) -> list[list[float]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    scored = []
    with torch.inference_mode():
        for row in ids:
            steps = model(torch.tensor([row])).logits[0, :-1].log_softmax(-1)
            scored.append(steps.gather(-1, torch.tensor(row[1:])[:, None]).squeeze(-1).tolist())
    return scored


@pytest.mark.slow
def test_grpo_trains_with_rollouts_from_a_vllm_rollout_server_that_follows_every_step(tiny_model, token_task, tmp_path):
    pytest.importorskip("omni_plugin_vllm")
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    omni = Path(sys.executable).with_name("omni")
    server, url, log = start_serving(
        [str(omni), "rollout", "--model", str(tiny_model), "--served-model-name", "policy", "--port", "0"]
        + ["--enforce-eager", "true", "--max-model-len", "512"]
    )
    try:
        out = tmp_path / "out"
        port = url.rsplit(":", 1)[1]
        steps = ["--max-steps", "4", "--save-strategy", "steps", "--save-steps", "3", "--logging-steps", "1"]
        spelling = ["--vllm_mode", "server", "--vllm_server_host", "127.0.0.1", "--vllm_server_port", port]
        args = argv("grpo", tiny_model, token_task, out, *steps, *spelling)
        result = run_omni(*args, env={"OMP_NUM_THREADS": "1"}, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"rollout engine: the omni rollout server at {url} (serving policy)" in result.stderr
        # One update before the first rollouts, then one after each step that more rollouts followed (1 to 3).
        assert httpx.get(f"{url}/omni/v1/weights").json()["updates"] == 4
        assert "weights update 4:" in "".join(log)
        records = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
        assert len([r for r in records if "reward" in r]) == 4

        # The server now scores prompts as the trainer's step-3 weights do (saved in checkpoint-3), not as the
        # model it started with.
        tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        texts = ["Write a number: 12 34 56", "The band is between these tokens", "hello hello hello"]
        ids = [tokenizer(text)["input_ids"] for text in texts]
        served = prompt_logprobs(url, ids)
        trained = model_logprobs(out / "checkpoint-3", ids)
        base = model_logprobs(tiny_model, ids)
        for got, want, start in zip(served, trained, base, strict=True):
            assert got == pytest.approx(want, abs=2e-3)
            assert max(abs(a - b) for a, b in zip(got, start, strict=True)) > 0.05
    finally:
        engine_processes = children(server.pid)  # vLLM's engine core
        server.terminate()
        server.wait(timeout=60)
    # Stopped with SIGTERM, the server closed its engine: no vLLM process outlives it.
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in engine_processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert engine_processes and not any(Path(f"/proc/{pid}").exists() for pid in engine_processes)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
