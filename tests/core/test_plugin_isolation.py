"""Real plugin distributions, pip-installed into a temporary site directory, loaded by the real `omni`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_omni

PLUGINS: dict[str, str] = {
    # Its entry module raises on import.
    "broken": 'raise RuntimeError("boom: broken plugin import")',
    # alpha and beta both register the tuner 'shared'; gamma explicitly overrides alpha's.
    "alpha": """
        from omni import hookimpl
        from omni.registry import TunerSpec, RewardSpec

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="shared", description="alpha's", impl="json:dumps"))

        @hookimpl
        def register_rewards(register):
            register(RewardSpec(name="alpha-reward", description="alpha's reward", impl="json:dumps"))
    """,
    "beta": """
        from omni import hookimpl
        from omni.registry import TunerSpec

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="shared", description="beta's", impl="json:dumps"))
    """,
    "gamma": """
        from omni import hookimpl
        from omni.registry import TunerSpec

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="shared", description="gamma's", impl="json:loads", overrides="omni-plugin-alpha"))
    """,
    # Written for a plugin API this core does not provide.
    "future": """
        from omni import hookimpl
        from omni.registry import TunerSpec

        OMNI_PLUGIN_API = 99

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="future-tuner", description="from the future", impl="json:dumps"))
    """,
    # Registers one spec, then fails: nothing of it may stay registered.
    "halfway": """
        from omni import hookimpl
        from omni.registry import TunerSpec

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="halfway-tuner", description="never committed", impl="json:dumps"))
            raise ValueError("failed half way through registering")
    """,
}


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("plugin-src")
    site = tmp_path_factory.mktemp("site")
    for name, code in PLUGINS.items():
        root = src / f"omni-plugin-{name}"
        (root / f"omni_plugin_{name}").mkdir(parents=True)
        (root / f"omni_plugin_{name}" / "__init__.py").write_text(textwrap.dedent(code))
        (root / "pyproject.toml").write_text(
            textwrap.dedent(f"""
                [build-system]
                requires = ["setuptools>=68"]
                build-backend = "setuptools.build_meta"

                [project]
                name = "omni-plugin-{name}"
                version = "1.2.3"

                [project.entry-points.omni]
                {name} = "omni_plugin_{name}"
            """)
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
        + [str(p) for p in sorted(src.iterdir())],
        check=True,
        capture_output=True,
    )
    return site


def omni_with(site: Path, *args: str, plugins: str | None = None, **env: str):
    extra = {"PYTHONPATH": str(site), **env}
    if plugins is not None:
        extra["OMNI_PLUGINS"] = plugins
    return run_omni(*args, env=extra)


def plugin_rows(result) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_broken_plugin_is_reported_and_the_rest_works(site_dir: Path):
    result = omni_with(site_dir, "plugins", "--json", plugins="broken,alpha")
    rows = plugin_rows(result)
    assert rows["broken"]["distribution"] == "omni-plugin-broken"
    assert rows["broken"]["version"] == "1.2.3"
    assert "RuntimeError: boom: broken plugin import" in rows["broken"]["error"]
    assert "omni-plugin-broken 1.2.3" in result.stderr and "boom" in result.stderr
    assert rows["alpha"]["registered"] == {"tuners": ["shared"], "rewards": ["alpha-reward"]}
    assert set(rows["alpha"]["hooks"]) == {"register_tuners", "register_rewards"}
    listing = omni_with(site_dir, "list", "rewards", plugins="broken,alpha")
    assert listing.returncode == 0 and "alpha-reward" in listing.stdout


def test_human_listing_names_the_broken_plugin(site_dir: Path):
    result = omni_with(site_dir, "plugins", plugins="broken")
    assert result.returncode == 0
    assert "broken  (omni-plugin-broken 1.2.3)" in result.stdout
    assert "ERROR: RuntimeError: boom" in result.stdout


def test_strict_mode_makes_a_broken_plugin_fatal(site_dir: Path):
    result = omni_with(site_dir, "plugins", plugins="broken", OMNI_STRICT_PLUGINS="1")
    assert result.returncode == 2
    assert "boom: broken plugin import" in result.stderr
    assert "Traceback" not in result.stderr


def test_collision_names_both_distributions(site_dir: Path):
    result = omni_with(site_dir, "list", "tuners", plugins="alpha,beta")
    assert result.returncode == 0
    assert "omni-plugin-alpha 1.2.3 and omni-plugin-beta 1.2.3" in result.stderr
    assert "shared" not in result.stdout  # ambiguous names are not offered
    plugins = omni_with(site_dir, "plugins", plugins="alpha,beta")
    assert "CONFLICT: tuners 'shared' registered by omni-plugin-alpha, omni-plugin-beta" in plugins.stdout
    strict = omni_with(site_dir, "list", "tuners", plugins="alpha,beta", OMNI_STRICT_PLUGINS="1")
    assert strict.returncode == 2 and "registered by both" in strict.stderr


def test_explicit_override_wins_whatever_the_order(site_dir: Path):
    result = omni_with(site_dir, "list", "tuners", "--json", plugins="alpha,gamma")
    assert result.returncode == 0 and "registered by both" not in result.stderr
    (shared,) = [row for row in json.loads(result.stdout) if row["name"] == "shared"]
    assert shared["distribution"] == "omni-plugin-gamma"


def test_allow_list_and_deny_list(site_dir: Path):
    only_alpha = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins="omni-plugin-alpha"))
    assert "alpha" in only_alpha and "beta" not in only_alpha and "broken" not in only_alpha
    builtins_only = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins=""))
    assert all(row["builtin"] for row in builtins_only.values())
    denied = plugin_rows(
        omni_with(site_dir, "plugins", "--json", plugins="alpha,beta,broken", OMNI_DISABLE_PLUGINS="beta,broken")
    )
    assert "alpha" in denied and "beta" not in denied and "broken" not in denied


def test_incompatible_plugin_api_is_reported_not_loaded(site_dir: Path):
    rows = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins="future"))
    assert "plugin API 99" in rows["future"]["error"]
    assert rows["future"]["registered"] == {}


def test_registration_failure_commits_nothing(site_dir: Path):
    rows = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins="halfway"))
    assert "ValueError: failed half way" in rows["halfway"]["error"]
    listing = omni_with(site_dir, "list", "tuners", plugins="halfway")
    assert "halfway-tuner" not in listing.stdout
