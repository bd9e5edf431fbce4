"""The installed distribution: its entry point registers every reward, `omni list rewards` shows their
options, and neither loading it nor resolving rewards imports torch, transformers or math-verify."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omni.plugins import load_plugins
from omni_plugin_grpo.rewards import resolve_rewards
from omni_plugin_grpo.rewards.options import SoftOverlongOptions

REWARDS = ["accuracy", "cosine", "environment", "format", "length", "repetition", "soft_overlong"]
HEAVY = ("torch", "transformers", "trl", "math_verify", "sympy", "latex2sympy2_extended")


@pytest.fixture(scope="module")
def host():
    return load_plugins({"OMNI_PLUGINS": "grpo", "OMNI_STRICT_PLUGINS": "1"})


def test_the_entry_point_registers_every_reward(host):
    regs = host.registry.all("rewards")
    assert [r.spec.name for r in regs] == REWARDS
    assert {r.distribution.name for r in regs} == {"omni-plugin-grpo"}
    assert [r.spec.name for r in host.registry.all("environments")] == ["calculator"]


def test_rewards_resolve_through_the_installed_registry(host):
    options = {"soft_overlong": SoftOverlongOptions(soft_max_length=8, soft_cache_length=4)}
    rewards = resolve_rewards(["accuracy", "soft-overlong"], [1.0, 0.5], host.registry, options)
    assert rewards[0](["q"], [r"\boxed{\frac{1}{2}}"], solution=["0.5"]) == [1.0]
    assert rewards[1](["q"], ["x"], completion_ids=[[1] * 6]) == [-0.5]
    assert [r.weight for r in rewards] == [1.0, 0.5]


def test_omni_list_rewards_shows_them_with_their_options(omni_cli):
    result = omni_cli("list", "rewards", "--json", env={"OMNI_PLUGINS": "grpo"})
    assert result.returncode == 0, result.stderr
    flags = {row["name"]: [o["flag"] for o in row["options"]] for row in json.loads(result.stdout)}
    assert sorted(flags) == REWARDS
    assert flags["accuracy"] == []
    assert flags["format"] == ["--format-pattern"]
    assert "--cosine-min-len-value-wrong" in flags["cosine"] and "--cosine-max-len" in flags["cosine"]
    assert flags["repetition"] == ["--repetition-n-grams", "--repetition-max-penalty"]
    assert flags["soft_overlong"] == ["--soft-max-length", "--soft-cache-length"]


PROBE = """
import json, sys
from omni.cli.main import main
code = main(sys.argv[1:]) if sys.argv[1:] else __import__("omni_plugin_grpo.rewards") and 0
print("@@" + json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["plugins"], ["list", "rewards"], ["rlhf", "--algo", "dapo", "--help"], []],
    ids=lambda a: " ".join(a) or "import",
)
def test_nothing_heavy_is_imported(argv):
    result = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *argv], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stderr.rsplit("@@", 1)[1])
    assert report == {"code": 0, "heavy": []}, result.stderr
