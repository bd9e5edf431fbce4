"""A registered dataset's options: flags and YAML keys of the training commands, handed to its loader."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omni.api import DatasetSpec, OmniError, hookimpl, option
from omni.cli.invocation import parse_invocation
from omni.data import DataOptions, load_datasets
from omni.plugins import load_plugins


@dataclass
class CountingOptions:
    counting_upto: int = option(3, help="count from 1 to this")


def load_counting(name: str, options: CountingOptions, *, streaming: bool):
    if options.counting_upto < 1:
        raise OmniError(f"--counting-upto must be at least 1, got {options.counting_upto}")
    for n in range(1, options.counting_upto + 1):
        yield {"messages": [{"role": "user", "content": f"after {n - 1}?"}, {"role": "assistant", "content": str(n)}]}


class CountingPlugin:
    @hookimpl
    def register_datasets(self, register):
        register(
            DatasetSpec(
                name="counting",
                description="count",
                impl="tests.core.test_data_plugin_options:load_counting",
                options=CountingOptions,
            )
        )


def _sft(registry, argv):
    return parse_invocation(registry.get("commands", "sft").spec, argv, registry)


def _dataset_options(invocation):
    return {s.spec.name: s.options for s in invocation.selected["datasets"]}


def test_identity_options_come_from_flags_and_yaml_and_reach_the_loader(tmp_path):
    registry = load_plugins({"OMNI_PLUGINS": "datasets"}).registry
    config = tmp_path / "run.yaml"
    config.write_text("model_author: [Omni Labs]\n")
    invocation = _sft(registry, ["--config", str(config), "--dataset", "identity", "--model_name", "Omni-Bot"])
    options = _dataset_options(invocation)["identity"]
    assert (options.model_name, options.model_author) == (["Omni-Bot"], ["Omni Labs"])
    rows = load_datasets(invocation.options, registry, dataset_options=_dataset_options(invocation)).train
    by_question = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    assert "Omni-Bot" in by_question["What's your name?"] and "Omni Labs" in by_question["Who created you?"]


def test_options_of_datasets_not_named_keep_their_defaults(register_plugin, omni_host):
    register_plugin(CountingPlugin(), name="counting")
    rows = load_datasets(DataOptions(dataset=["counting"]), omni_host.registry).train
    assert [r["messages"][1]["content"] for r in rows] == ["1", "2", "3"]
    told = load_datasets(DataOptions(dataset=["counting"]), omni_host.registry, dataset_options={
        "counting": CountingOptions(counting_upto=5)
    }).train  # fmt: skip
    assert len(told) == 5


@pytest.mark.parametrize("streaming", [False, True])
def test_a_bad_option_fails_while_loading_even_when_streaming(register_plugin, omni_host, streaming):
    register_plugin(CountingPlugin(), name="counting")
    invocation = _sft(omni_host.registry, ["--dataset", "counting", "--counting-upto", "0", "--max-steps", "1"])
    with pytest.raises(OmniError, match="--counting-upto must be at least 1, got 0"):
        load_datasets(
            DataOptions(dataset=["counting"], streaming=streaming),
            omni_host.registry,
            dataset_options=_dataset_options(invocation),
        )


def test_a_bad_option_type_in_yaml_names_the_file(register_plugin, omni_host, tmp_path):
    register_plugin(CountingPlugin(), name="counting")
    config = tmp_path / "run.yaml"
    config.write_text("counting_upto: many\n")
    with pytest.raises(OmniError, match=r"run\.yaml: counting_upto must be int, got 'many'"):
        _sft(omni_host.registry, ["--config", str(config), "--dataset", "counting"])


def test_template_render_takes_the_dataset_options_as_training_does(register_plugin, tiny_model_dir, capsys):
    import json

    from omni.cli.main import main

    register_plugin(CountingPlugin(), name="counting")
    render = ["template", "render", "--model", str(tiny_model_dir), "--template", "default", "--dataset", "counting"]
    assert main([*render, "--counting-upto", "7", "--index", "6", "--json"]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["row"] == "counting:row 6" and "after 6?" in "".join(t["text"] for t in rendered["tokens"])
    assert main([*render, "--index", "6"]) == 2  # three rows by default
    assert "has no row 6" in capsys.readouterr().err
