"""One test per hook: a plugin implementing it registers a spec that omni then finds and lists.

`test_meta.py` fails when a hook in `omni.hookspecs` has no test here or no section in docs/hooks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omni import hookimpl
from omni.cli.invocation import parse_invocation
from omni.cli.main import main
from omni.errors import OmniError
from omni.options import option
from omni.registry import (
    AlgorithmSpec,
    BenchmarkSpec,
    CallbackSpec,
    CommandSpec,
    DatasetSpec,
    EncoderSpec,
    EngineSpec,
    EnvironmentSpec,
    ModelSpec,
    QuantizerSpec,
    RewardSpec,
    StrategySpec,
    TemplateSpec,
    TunerSpec,
)
from omni.template.tools import ParsedAnswer, ToolCall
from omni.train.callback import TrainingCallback, active_callbacks
from omni.train.environment import Environment, EnvironmentStep
from omni.train.job import active_strategy
from omni.train.strategy import Strategy


def active_callbacks_of(invocation):
    return active_callbacks(
        invocation.options, invocation.selected, command=invocation.command.name, registry=invocation.registry
    )


def listed(capsys, kind: str) -> str:
    assert main(["list", kind]) == 0
    return capsys.readouterr().out


def test_register_models(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(
                ModelSpec(
                    name="acme",
                    description="Acme family",
                    impl="omni.models.loader:load_pretrained",
                    architectures=("AcmeForCausalLM",),
                    hub_ids=("acme/acme-*",),
                    lora_targets=("qkv",),
                )
            )

    register_plugin(Plugin(), name="acme", distribution="omni-plugin-acme")
    spec = omni_host.registry.get("models", "acme").spec
    assert spec.matches_hub_id("Acme/acme-7B") and not spec.matches_hub_id("other/acme-7b")
    assert "acme  [omni-plugin-acme]" in listed(capsys, "models")


def test_register_templates(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_templates(self, register):
            register(TemplateSpec(name="acme-chat", description="Acme chat format", impl="omni.template.base:Template"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    from omni.template.base import Template

    assert omni_host.registry.get("templates", "acme-chat").spec.load() is Template
    assert "acme-chat" in listed(capsys, "templates")


def test_register_encoders(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="acme-image", description="PNG loader", impl="json:loads", modality="image"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert omni_host.registry.get("encoders", "acme-image").spec.modality == "image"
    assert "acme-image" in listed(capsys, "encoders")
    with pytest.raises(TypeError, match="modality must be image, audio or video"):
        EncoderSpec(name="x", description="x", impl="json:loads", modality="smell")


def test_register_tuners(register_plugin, omni_host, capsys):
    @dataclass
    class AcmeTunerOptions:
        acme_rank: int = option(4, help="rank")

    class Plugin:
        @hookimpl
        def register_tuners(self, register):
            register(
                TunerSpec(
                    name="acme-tuner", description="Acme", impl="omni.train.tuner:Tuner", options=AcmeTunerOptions
                )
            )

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    spec = omni_host.registry.get("tuners", "ACME_TUNER").spec  # names match case- and dash-insensitively
    assert spec.default_options() == AcmeTunerOptions(4)
    assert "--acme-rank" in listed(capsys, "tuners")


def test_register_algorithms(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_algorithms(self, register):
            register(AlgorithmSpec(name="acme-po", description="Acme PO", impl="json:dumps", command="rlhf"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert omni_host.registry.get("algorithms", "acme-po").spec.command == "rlhf"
    assert "acme-po" in listed(capsys, "algorithms")


def test_register_rewards(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_rewards(self, register):
            register(RewardSpec(name="acme-len", description="length", impl="tests.core.test_hooks:_length_reward"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    reward = omni_host.registry.get("rewards", "acme-len").spec.load()
    assert reward(["p", "p"], ["ab", "abcd"]) == [2.0, 4.0]
    assert "acme-len" in listed(capsys, "rewards")


def _length_reward(prompts, completions, **columns):
    return [float(len(c)) for c in completions]


def test_register_quantizers(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_quantizers(self, register):
            register(QuantizerSpec(name="acme-q", description="Acme 3-bit", impl="json:dumps"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert omni_host.registry.find("quantizers", "acme-q") is not None
    assert "acme-q" in listed(capsys, "quantizers")


def test_register_engines(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_engines(self, register):
            register(EngineSpec(name="acme-engine", description="Acme", impl="omni.infer.engine:Engine"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    engine_cls = omni_host.registry.get("engines", "acme-engine").spec.load()
    assert engine_cls("m", adapters={"a": "/x"}).adapter_paths == {"a": "/x"}
    assert "acme-engine" in listed(capsys, "engines")


def test_register_datasets(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec(name="acme-hub", description="Acme hub ids", impl="json:loads", pattern=r"acme/.+"))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert omni_host.registry.get("datasets", "acme-hub").spec.pattern == r"acme/.+"
    assert "acme-hub" in listed(capsys, "datasets")


def test_register_commands(register_plugin, capsys):
    @dataclass
    class HelloOptions:
        who: str = option("world", help="who to greet")

    class Plugin:
        @hookimpl
        def register_commands(self, register):
            register(
                CommandSpec(
                    name="hello", description="greet", impl="tests.core.test_hooks:_hello", options=HelloOptions
                )
            )

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert main(["hello", "--who", "omni"]) == 0
    assert capsys.readouterr().out == "hello omni\n"
    assert main(["--help"]) == 0
    assert "hello" in capsys.readouterr().out


def _hello(invocation) -> int:
    print(f"hello {invocation.options.who}")
    return 0


def test_register_callback_rejects_another_kind(register_plugin, omni_host):
    class Plugin:
        @hookimpl
        def register_tuners(self, register):
            register(RewardSpec(name="wrong", description="a reward in the tuners hook", impl="json:dumps"))

    info = register_plugin(Plugin(), distribution="omni-plugin-acme")
    line = Plugin.register_tuners.__code__.co_firstlineno + 2  # the register(...) call
    assert info.error == (
        f"hook register_tuners raised at {__file__}:{line}: "
        "TypeError: register_tuners expects TunerSpec records, got RewardSpec"
    )
    assert omni_host.registry.find("rewards", "wrong") is None


@dataclass
class AcmeMeshOptions:
    acme_mesh: str | None = option(None, help="shard over this mesh shape")


class AcmeMeshStrategy(Strategy):
    def training_arguments(self, options, *, model, model_spec):
        return {"ddp_backend": "gloo"}


def test_register_strategies(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_strategies(self, register):
            register(
                StrategySpec(
                    name="acme-mesh",
                    description="Acme's mesh sharding",
                    impl="tests.core.test_hooks:AcmeMeshStrategy",
                    options=AcmeMeshOptions,
                    switch="acme_mesh",
                )
            )

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert "--acme-mesh" in listed(capsys, "strategies")
    sft = omni_host.registry.get("commands", "sft").spec
    idle = parse_invocation(sft, [], omni_host.registry)
    assert active_strategy(idle.options, idle.selected) is None  # installed, but its switch is not set
    on = parse_invocation(sft, ["--acme-mesh", "2x4"], omni_host.registry)
    strategy = active_strategy(on.options, on.selected)
    assert isinstance(strategy, AcmeMeshStrategy) and strategy.options == AcmeMeshOptions("2x4")
    with pytest.raises(TypeError, match="switch 'mesh' is not one of its options"):
        StrategySpec(name="x", description="x", impl="json:loads", options=AcmeMeshOptions, switch="mesh")


@dataclass
class AcmeStopOptions:
    stop_at_loss: float | None = option(None, help="stop training once the logged loss is below this")


class AcmeStop(TrainingCallback):
    def check(self, options, *, command, registry):
        if self.options.stop_at_loss <= 0:
            raise OmniError("--stop-at-loss must be positive")

    def training_arguments(self, options):
        return {"logging_steps": 1}


def test_register_callbacks(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_callbacks(self, register):
            register(
                CallbackSpec(
                    name="acme-stop",
                    description="stop when the loss is low enough",
                    impl="tests.core.test_hooks:AcmeStop",
                    options=AcmeStopOptions,
                    switch="stop_at_loss",
                )
            )

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert "--stop-at-loss" in listed(capsys, "callbacks")
    for command in ("sft", "pt"):  # the training commands take its flags
        spec = omni_host.registry.get("commands", command).spec
        assert active_callbacks_of(parse_invocation(spec, [], omni_host.registry)) == []  # installed, switched off
    sft = omni_host.registry.get("commands", "sft").spec
    (on,) = active_callbacks_of(parse_invocation(sft, ["--stop-at-loss", "0.5"], omni_host.registry))
    assert isinstance(on, AcmeStop) and on.options == AcmeStopOptions(0.5)
    assert on.training_arguments(None) == {"logging_steps": 1}
    with pytest.raises(OmniError, match="must be positive"):  # checked when built, before anything loads
        active_callbacks_of(parse_invocation(sft, ["--stop-at-loss", "-1"], omni_host.registry))
    with pytest.raises(TypeError, match="switch 'stop' is not one of its options"):
        CallbackSpec(name="x", description="x", impl="json:loads", options=AcmeStopOptions, switch="stop")


class AcmeQuiz:
    def __init__(self, options):
        self.options = options

    def load(self, path):
        for line in path.read_text().splitlines():
            question, answer = line.split("=")
            yield {"subset": "sums", "question": question, "answer": answer}

    def prompt(self, row):
        return {"messages": [{"role": "user", "content": f"{row['question']} = ?"}]}

    def score(self, answer, row):
        return {"accuracy": float(answer.strip() == row["answer"]), "extracted": answer.strip()}


def test_register_benchmarks(register_plugin, omni_host, capsys, tmp_path):
    class Plugin:
        @hookimpl
        def register_benchmarks(self, register):
            register(
                BenchmarkSpec(
                    name="acme-quiz",
                    description="Acme's sums quiz",
                    impl="tests.core.test_hooks:AcmeQuiz",
                    layout="a text file of QUESTION=ANSWER lines",
                )
            )

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert "acme-quiz  [omni-plugin-acme]" in listed(capsys, "benchmarks")
    spec = omni_host.registry.get("benchmarks", "acme-quiz").spec
    assert spec.metric == "accuracy" and spec.modalities == ("text",)
    (tmp_path / "quiz.txt").write_text("1+1=2\n")
    quiz = spec.load()(spec.default_options())
    (row,) = quiz.load(tmp_path / "quiz.txt")
    assert quiz.prompt(row) == {"messages": [{"role": "user", "content": "1+1 = ?"}]}
    assert quiz.score(" 2", row)["accuracy"] == 1.0 and quiz.score("3", row)["accuracy"] == 0.0


class AcmeCounter(Environment):
    """Counts the calls of an episode; the third call ends it."""

    def reset(self, row):
        self.calls = 0

    def step(self, answer):
        self.calls += len(answer.tool_calls)
        messages = [{"role": "tool", "content": str(self.calls)} for _ in answer.tool_calls]
        return EnvironmentStep(messages=messages, reward=float(self.calls), done=self.calls >= 3)


def test_register_environments(register_plugin, omni_host, capsys):
    class Plugin:
        @hookimpl
        def register_environments(self, register):
            register(
                EnvironmentSpec(
                    name="acme-counter", description="counts calls", impl="tests.core.test_hooks:AcmeCounter"
                )
            )

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert "acme-counter  [omni-plugin-acme]" in listed(capsys, "environments")
    spec = omni_host.registry.get("environments", "acme-counter").spec
    episode = spec.load()(spec.default_options())
    episode.reset({"messages": [{"role": "user", "content": "count"}]})
    call = ToolCall("count")
    first = episode.step(ParsedAnswer("", (call, call)))
    assert first.messages == [{"role": "tool", "content": "2"}] * 2 and first.reward == 2.0 and not first.done
    assert episode.step(ParsedAnswer("", (call,))).done
