"""The plugin index names the distribution to install for a capability nobody installed; it follows the plugins."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from omni.cli.main import main
from omni.plugin_index import distributions, index_of, provider_of
from omni.plugins import load_plugins, using_host

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plugin_index.py"


def _script():
    spec = importlib.util.spec_from_file_location("plugin_index_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_index_matches_what_the_plugins_here_register():
    script = _script()
    here = script.repository_distributions()
    host = load_plugins({})
    installed = {p.distribution.name for p in host.plugins if not p.builtin} & here
    built = index_of(host, installed)["distributions"]
    indexed = {dist: provides for dist, provides in distributions().items() if dist in installed}
    stale = [dist for dist in distributions() if dist not in here]
    assert (indexed, stale) == (built, []), "run: .venv/bin/python scripts/plugin_index.py --write"


def test_lookups_by_kind_alias_and_switch():
    assert provider_of("tuners", "lora") == "omni-plugin-lora"
    assert provider_of("algorithms", "dr-grpo") == "omni-plugin-grpo"  # spelled as users type it
    assert provider_of("quantizers", "bitsandbytes") == "omni-plugin-bnb"  # an alias
    assert provider_of("switches", "deepspeed") == "omni-plugin-deepspeed"
    assert provider_of("tuners", "no-such-tuner") is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["sft", "--tuner", "reft", "--dataset", "x.jsonl"],
            "tuner 'reft' is not installed: pip install omni-plugin-reft",
        ),
        (
            ["sft", "--deepspeed", "zero2", "--dataset", "x.jsonl"],
            "--deepspeed needs the omni-plugin-deepspeed plugin: pip install omni-plugin-deepspeed",
        ),
    ],
)
def test_a_missing_capability_names_its_distribution(argv, message, capsys):
    with using_host(load_plugins({"OMNI_PLUGINS": ""})):
        assert main(argv) == 2
    assert message in capsys.readouterr().err
