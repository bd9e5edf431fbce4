"""Adapter routing: LoRA adapters trained under names on one base, each `omni infer --input` row answered by its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.data.rows import Row
from omni.errors import DataError, OmniError
from omni.infer.adapters import AdapterRouter, parse_adapters, parse_routes
from omni.plugins import load_plugins, using_host

PROMPTS = [
    "What color is the apple?",
    "Tell me about the sky.",
    "Which animal is fast?",
    "Name a number.",
    "Where is the river?",
    "Why is snow cold?",
]
ANSWERS = {"fruit": "apple", "drink": "water"}  # each adapter answers every prompt with its own word
FAST = "--gradient-checkpointing false --logging-steps 5 --save-steps 1000 --torch-dtype float32".split()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from omni.testing.models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def adapters(base, tmp_path_factory) -> dict[str, Path]:
    """Two LoRA adapters trained with `omni sft --adapter-name NAME` on the same prompts, different answers."""
    work = tmp_path_factory.mktemp("routing")
    trained = {}
    for name, word in ANSWERS.items():
        data = work / f"{name}.jsonl"
        rows = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": word}]} for p in PROMPTS]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = work / f"run-{name}"  # the folder's name is not the adapter's: the recorded name must win
        argv = ["sft", "--model", str(base), "--dataset", str(data), "--tuner", "lora", "--adapter-name", name]
        argv += ["--learning-rate", "1e-2", "--max-steps", "30", "--batch-size", "6", "--output-dir", str(out), *FAST]
        with using_host(load_plugins({"OMNI_PLUGINS": "lora,llama"})):
            assert main(argv) == 0
        assert json.loads((out / "args.json").read_text())["adapter_name"] == name
        trained[name] = out
    return trained


def test_bare_adapter_folders_load_under_their_recorded_names(adapters):
    assert parse_adapters([str(adapters["fruit"]), str(adapters["drink"])]) == {
        "fruit": str(adapters["fruit"]),
        "drink": str(adapters["drink"]),
    }
    assert parse_adapters([f"x={adapters['fruit']}"]) == {"x": str(adapters["fruit"])}


def test_infer_routes_each_row_by_its_task_column_and_its_own_adapter_field(omni_cli, adapters, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": p}], "task": "food" if i % 2 == 0 else "beverage"}
        for i, p in enumerate(PROMPTS)
    ]
    rows.append({"messages": [{"role": "user", "content": PROMPTS[0]}], "task": "food", "adapter": "drink"})
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "answers.jsonl"
    result = omni_cli(
        "infer", "--adapters", str(adapters["fruit"]), str(adapters["drink"]), "--input", str(source),
        "--output", str(out), "--route-by", "task", "--routes", "food=fruit", "beverage=drink",
        "--max-new-tokens", "6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    expected = ["fruit" if i % 2 == 0 else "drink" for i in range(len(PROMPTS))] + ["drink"]
    assert [a["adapter"] for a in answers] == expected
    assert [a["response"] for a in answers] == [ANSWERS[name] for name in expected]


def test_route_by_without_routes_takes_the_column_as_the_adapter_name(omni_cli, adapters, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": p}], "want": n}
        for p, n in zip(PROMPTS, ["drink", "fruit"] * 3, strict=True)
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "answers.jsonl"
    result = omni_cli(
        "infer", "--adapters", f"fruit={adapters['fruit']}", f"drink={adapters['drink']}", "--input", str(source),
        "--output", str(out), "--route-by", "want", "--max-new-tokens", "6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line)["response"] for line in out.read_text().splitlines()]
    assert answers == [ANSWERS[r["want"]] for r in rows]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(source.read_text() + json.dumps({"messages": [{"role": "user", "content": "hi"}], "want": "tea"}))
    result = omni_cli(
        "infer", "--adapters", f"fruit={adapters['fruit']}", f"drink={adapters['drink']}", "--input", str(bad),
        "--output", str(tmp_path / "never.jsonl"), "--route-by", "want", "--max-new-tokens", "6",
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{bad}:7: want 'tea' names adapter 'tea', which is not loaded" in result.stderr
    assert not (tmp_path / "never.jsonl").exists()


def test_pt_engine_batches_never_mix_adapters(base, adapters):
    from omni.infer.engine import GenerationConfig, InferRequest
    from omni.infer.pt_engine import PtEngine

    engine = PtEngine(str(base), adapters={n: str(p) for n, p in adapters.items()})
    batches = []
    run = engine._generate_batch

    def recording(requests, streamer=None):
        batches.append({r.adapter for r in requests})
        return run(requests, streamer)

    engine._generate_batch = recording
    config = GenerationConfig(max_new_tokens=6)
    names = ["fruit", "drink", None, "drink", "fruit", None]
    requests = [
        InferRequest({"messages": [{"role": "user", "content": p}]}, config, n)
        for p, n in zip(PROMPTS, names, strict=True)
    ]
    mixed = [r.choices[0].text for r in engine.generate(requests)]
    assert all(len(b) == 1 for b in batches) and len(batches) == 3
    alone = [engine.generate([r])[0].choices[0].text for r in requests]
    assert mixed == alone
    assert [mixed[i] for i in (0, 1, 3, 4)] == ["apple", "water", "water", "apple"]
    assert mixed[2] not in ANSWERS.values()  # None: the bare base model
    engine.close()


def test_router_errors_name_the_row_and_the_flag():
    router = AdapterRouter(("a", "b"), "a", "task", parse_routes(["x=a", "y=b"]))
    assert router.adapter_for({"task": "y"}) == "b" and router.adapter_for({"task": "x", "adapter": "b"}) == "b"
    with pytest.raises(DataError, match=r"^rows.jsonl:4: no 'task' column to route by \(--route-by task\)"):
        router.adapter_for(Row({"messages": []}, "rows.jsonl", 4))
    with pytest.raises(DataError, match="rows.jsonl:5: task 'z' has no route; --routes maps x, y"):
        router.adapter_for(Row({"task": "z"}, "rows.jsonl", 5))
    with pytest.raises(DataError, match=r"adapter 'c' is not loaded \(--adapters loaded: a, b\)"):
        router.adapter_for({"adapter": "c"})
    assert AdapterRouter(("a",), "a").adapter_for({"task": "anything"}) == "a"
    with pytest.raises(OmniError, match="--routes x=c: 'c' is not loaded"):
        AdapterRouter(("a", "b"), "a", "task", {"x": "c"})
    with pytest.raises(OmniError, match="--routes needs --route-by"):
        AdapterRouter(("a", "b"), "a", None, {"x": "a"})
    with pytest.raises(OmniError, match="expected VALUE=ADAPTER"):
        parse_routes(["x"])
