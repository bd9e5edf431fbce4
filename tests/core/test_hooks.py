"""One test per hook: a plugin implementing it registers a spec that omni then finds and lists.

`test_meta.py` fails when a hook in `omni.hookspecs` has no test here or no section in docs/hooks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omni import hookimpl
from omni.cli.invocation import parse_invocation
from omni.cli.main import main
from omni.options import option
from omni.registry import (
    AlgorithmSpec,
    CommandSpec,
    DatasetSpec,
    EncoderSpec,
    EngineSpec,
    ModelSpec,
    QuantizerSpec,
    RewardSpec,
    StrategySpec,
    TemplateSpec,
    TunerSpec,
)
from omni.train.job import active_strategy
from omni.train.strategy import Strategy


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
                CommandSpec(name="hello", description="greet", impl="tests.core.test_hooks:_hello", options=HelloOptions)
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
    assert info.error == "TypeError: register_tuners expects TunerSpec records, got RewardSpec"
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
    assert active_strategy(idle) is None  # installed, but its switch is not set
    on = parse_invocation(sft, ["--acme-mesh", "2x4"], omni_host.registry)
    strategy = active_strategy(on)
    assert isinstance(strategy, AcmeMeshStrategy) and strategy.options == AcmeMeshOptions("2x4")
    with pytest.raises(TypeError, match="switch 'mesh' is not one of its options"):
        StrategySpec(name="x", description="x", impl="json:loads", options=AcmeMeshOptions, switch="mesh")
