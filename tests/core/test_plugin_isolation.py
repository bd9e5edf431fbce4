"""Real plugin distributions, pip-installed into a temporary site directory, loaded by the real `omni`.

Each way a plugin can go wrong is reported with the plugin's distribution, the hook or spec, and the file:line a
plugin author has to look at; the traceback only with --debug.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_omni

PLUGINS: dict[str, str] = {
    # Its entry module raises on import (line 4).
    "broken": """
        import json

        raise RuntimeError("boom: broken plugin import")
    """,
    # alpha and beta both register the tuner 'shared' and the dataset 'shared-rows'; gamma explicitly overrides
    # alpha's tuner.
    "alpha": """
        from omni.api import DatasetSpec, RewardSpec, TunerSpec, hookimpl

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="shared", description="alpha's", impl="json:dumps"))

        @hookimpl
        def register_rewards(register):
            register(RewardSpec(name="alpha-reward", description="alpha's reward", impl="json:dumps"))

        @hookimpl
        def register_datasets(register):
            register(DatasetSpec(name="shared-rows", description="alpha's rows", impl="json:loads"))
    """,
    "beta": """
        from omni.api import DatasetSpec, TunerSpec, hookimpl

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="shared", description="beta's", impl="json:dumps"))

        @hookimpl
        def register_datasets(register):
            register(DatasetSpec(name="shared-rows", description="beta's rows", impl="json:loads"))
    """,
    "gamma": """
        from omni.api import TunerSpec, hookimpl

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="shared", description="gamma's", impl="json:loads", overrides="omni-plugin-alpha"))
    """,
    # Written for a plugin API this core does not provide.
    "future": """
        from omni.api import TunerSpec, hookimpl

        OMNI_PLUGIN_API = 99

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="future-tuner", description="from the future", impl="json:dumps"))
    """,
    # Needs a minor release of API 1 newer than this core's.
    "newer": """
        from omni.api import TunerSpec, hookimpl

        OMNI_PLUGIN_API = "1.999"

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="newer-tuner", description="needs API 1.999", impl="json:dumps"))
    """,
    # Registers one spec, then fails (line 7): nothing of it may stay registered.
    "halfway": """
        from omni.api import TunerSpec, hookimpl

        @hookimpl
        def register_tuners(register):
            register(TunerSpec(name="halfway-tuner", description="never committed", impl="json:dumps"))
            raise ValueError("failed half way through registering")
    """,
    # A misspelled hook name (its decorator is on line 4): pluggy alone would register nothing without a word.
    "typo": """
        from omni.api import DatasetSpec, hookimpl

        @hookimpl
        def register_dataset(register):
            register(DatasetSpec(name="typo-rows", description="never registered", impl="json:loads"))
    """,
    # A command whose impl names a module that does not exist (registered on line 6).
    "badimpl": """
        from omni.api import CommandSpec, hookimpl

        @hookimpl
        def register_commands(register):
            register(
                CommandSpec(name="badcmd", description="points nowhere", impl="omni_plugin_badimpl.missing:run")
            )
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


def entry_module(site: Path, name: str) -> str:
    return str(site / f"omni_plugin_{name}" / "__init__.py")


def test_broken_plugin_is_reported_and_the_rest_works(site_dir: Path):
    result = omni_with(site_dir, "plugins", "--json", plugins="broken,alpha")
    rows = plugin_rows(result)
    assert rows["broken"]["distribution"] == "omni-plugin-broken"
    assert rows["broken"]["version"] == "1.2.3"
    where = f"{entry_module(site_dir, 'broken')}:4"
    assert rows["broken"]["error"] == (
        f"importing omni_plugin_broken failed at {where}: RuntimeError: boom: broken plugin import"
    )
    assert (
        f"omni: warning: plugin 'broken' (omni-plugin-broken 1.2.3) not loaded: importing omni_plugin_broken "
        f"failed at {where}: RuntimeError: boom" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert rows["alpha"]["registered"] == {
        "tuners": ["shared"],
        "rewards": ["alpha-reward"],
        "datasets": ["shared-rows"],
    }
    assert set(rows["alpha"]["hooks"]) == {"register_tuners", "register_rewards", "register_datasets"}
    listing = omni_with(site_dir, "list", "rewards", plugins="broken,alpha")
    assert listing.returncode == 0 and "alpha-reward" in listing.stdout


def test_debug_shows_the_plugins_traceback(site_dir: Path):
    result = omni_with(site_dir, "--debug", "list", "rewards", plugins="broken")
    assert result.returncode == 0
    assert "omni: plugin 'broken' (omni-plugin-broken 1.2.3):\nTraceback (most recent call last):" in result.stderr
    assert f'File "{entry_module(site_dir, "broken")}", line 4' in result.stderr


def test_human_listing_names_the_broken_plugin(site_dir: Path):
    result = omni_with(site_dir, "plugins", plugins="broken")
    assert result.returncode == 0
    assert "broken  (omni-plugin-broken 1.2.3)" in result.stdout
    assert "ERROR: importing omni_plugin_broken failed at" in result.stdout
    assert "RuntimeError: boom" in result.stdout


def test_strict_mode_makes_a_broken_plugin_fatal(site_dir: Path):
    result = omni_with(site_dir, "list", "tuners", plugins="broken", OMNI_STRICT_PLUGINS="1")
    assert result.returncode == 2
    assert f"{entry_module(site_dir, 'broken')}:4: RuntimeError: boom: broken plugin import" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugins_command_runs_in_strict_mode_and_lists_the_broken_plugin(site_dir: Path):
    result = omni_with(site_dir, "plugins", plugins="broken,alpha", OMNI_STRICT_PLUGINS="1")
    assert "ERROR: importing omni_plugin_broken failed at" in result.stdout
    assert "alpha  (omni-plugin-alpha 1.2.3)" in result.stdout and "rewards: alpha-reward" in result.stdout
    assert result.returncode == 2  # strict mode still says the installation has a problem
    assert "OMNI_STRICT_PLUGINS is set and 1 plugin problem(s) are listed above" in result.stderr
    healthy = omni_with(site_dir, "plugins", plugins="alpha", OMNI_STRICT_PLUGINS="1")
    assert healthy.returncode == 0, healthy.stderr


def test_hook_that_raises_is_named_with_its_line(site_dir: Path):
    rows = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins="halfway"))
    assert rows["halfway"]["error"] == (
        f"hook register_tuners raised at {entry_module(site_dir, 'halfway')}:7: "
        "ValueError: failed half way through registering"
    )
    assert rows["halfway"]["registered"] == {}
    listing = omni_with(site_dir, "list", "tuners", plugins="halfway")
    assert "halfway-tuner" not in listing.stdout


def test_misspelled_hook_is_named_with_a_suggestion(site_dir: Path):
    result = omni_with(site_dir, "list", "datasets", plugins="typo")
    assert result.returncode == 0
    assert (
        f"plugin 'typo' (omni-plugin-typo 1.2.3) not loaded: unknown hook register_dataset at "
        f"{entry_module(site_dir, 'typo')}:4; did you mean register_datasets?" in result.stderr
    )
    assert "KeyError" not in result.stderr and "typo-rows" not in result.stdout


def test_bad_impl_names_the_spec_the_plugin_and_the_path(site_dir: Path):
    result = omni_with(site_dir, "badcmd", plugins="badimpl")
    assert result.returncode == 2
    assert "internal error" not in result.stderr
    assert (
        "omni: error: command 'badcmd' (plugin omni-plugin-badimpl 1.2.3, registered at "
        f"{entry_module(site_dir, 'badimpl')}:6): impl 'omni_plugin_badimpl.missing:run' cannot be loaded: "
        "ModuleNotFoundError: No module named 'omni_plugin_badimpl.missing'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    debug = omni_with(site_dir, "--debug", "badcmd", plugins="badimpl")
    assert "Traceback" in debug.stderr and "cannot be loaded" in debug.stderr


def test_collision_names_both_distributions_and_lists_both(site_dir: Path):
    result = omni_with(site_dir, "list", "tuners", plugins="alpha,beta")
    assert result.returncode == 0
    assert "omni-plugin-alpha 1.2.3 and omni-plugin-beta 1.2.3" in result.stderr
    assert "shared  [omni-plugin-alpha]\n    !! CLASH: also registered by omni-plugin-beta" in result.stdout
    assert "shared  [omni-plugin-beta]\n    !! CLASH: also registered by omni-plugin-alpha" in result.stdout
    rows = json.loads(omni_with(site_dir, "list", "tuners", "--json", plugins="alpha,beta").stdout)
    shared = {row["distribution"]: row["clashes_with"] for row in rows if row["name"] == "shared"}
    assert shared == {"omni-plugin-alpha": ["omni-plugin-beta"], "omni-plugin-beta": ["omni-plugin-alpha"]}
    plugins = omni_with(site_dir, "plugins", plugins="alpha,beta")
    assert "CONFLICT: tuners 'shared' registered by omni-plugin-alpha, omni-plugin-beta" in plugins.stdout
    strict = omni_with(site_dir, "list", "tuners", plugins="alpha,beta", OMNI_STRICT_PLUGINS="1")
    assert strict.returncode == 2 and "registered by both" in strict.stderr


def test_collision_stops_the_command_that_uses_the_name_before_anything_loads(site_dir: Path, tmp_path: Path):
    result = omni_with(
        site_dir, "sft", "--dataset", "shared-rows#5", "--output-dir", str(tmp_path / "out"), plugins="alpha,beta"
    )
    assert result.returncode == 2
    assert (
        "omni: error: --dataset shared-rows#5: dataset 'shared-rows' is registered by both omni-plugin-alpha 1.2.3 "
        "and omni-plugin-beta 1.2.3" in result.stderr
    )
    assert not (tmp_path / "out").exists()
    tuner = omni_with(site_dir, "sft", "--tuner", "shared", "--dataset", "x.jsonl", plugins="alpha,beta")
    assert tuner.returncode == 2 and "tuner 'shared' is registered by both" in tuner.stderr


def test_explicit_override_wins_whatever_the_order(site_dir: Path):
    result = omni_with(site_dir, "list", "tuners", "--json", plugins="alpha,gamma")
    assert result.returncode == 0 and "registered by both" not in result.stderr
    (shared,) = [row for row in json.loads(result.stdout) if row["name"] == "shared"]
    assert shared["distribution"] == "omni-plugin-gamma" and shared["clashes_with"] == []


def test_allow_list_and_deny_list(site_dir: Path):
    only_alpha = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins="omni-plugin-alpha"))
    assert "alpha" in only_alpha and "beta" not in only_alpha and "broken" not in only_alpha
    builtins_only = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins=""))
    assert all(row["builtin"] for row in builtins_only.values())
    denied = plugin_rows(
        omni_with(site_dir, "plugins", "--json", plugins="alpha,beta,broken", OMNI_DISABLE_PLUGINS="beta,broken")
    )
    assert "alpha" in denied and "beta" not in denied and "broken" not in denied


def test_unknown_names_in_the_plugin_variables_are_warned_about(site_dir: Path):
    result = omni_with(site_dir, "plugins", "--json", plugins="alpah,beta", OMNI_DISABLE_PLUGINS="omni-plugin-brokn")
    assert "omni: warning: OMNI_PLUGINS names 'alpah', which is not an installed plugin; did you mean 'alpha'?" in (
        result.stderr
    )
    assert (
        "omni: warning: OMNI_DISABLE_PLUGINS names 'omni-plugin-brokn', which is not an installed plugin; "
        "did you mean 'omni-plugin-broken'?" in result.stderr
    )
    assert "beta" in plugin_rows(result)


def test_incompatible_plugin_api_is_reported_not_loaded(site_dir: Path):
    rows = plugin_rows(omni_with(site_dir, "plugins", "--json", plugins="future,newer,alpha"))
    assert rows["future"]["error"].startswith("written for plugin API 99, this omni-core")
    assert rows["newer"]["error"].startswith("written for plugin API 1.999, this omni-core")
    assert rows["future"]["registered"] == {} and rows["newer"]["registered"] == {}
    assert rows["alpha"]["error"] is None


def test_hook_with_other_arguments_is_named_with_its_line(register_plugin, omni_host):
    from omni.api import ModelSpec, hookimpl

    class Plugin:
        @hookimpl
        def register_models(self, reg):
            reg(ModelSpec(name="never", description="never registered", impl="json:loads"))

    with pytest.warns(UserWarning, match="not loaded: hook register_models at"):
        info = register_plugin(Plugin(), distribution="omni-plugin-args")
    line = Plugin.register_models.__code__.co_firstlineno
    assert info.error == f"hook register_models at {__file__}:{line} takes reg; omni passes only register"
    assert omni_host.registry.find("models", "never") is None


def test_a_plugin_option_spelled_like_an_existing_flag_is_refused_by_name(register_plugin, capsys):
    from dataclasses import dataclass

    from omni import hookimpl
    from omni.cli.main import main
    from omni.options import option
    from omni.registry import DatasetSpec

    @dataclass
    class ClashingOptions:
        seed: int = option(0, help="the dataset's own shuffling seed")

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec(name="acme-rows", description="rows", impl="json:loads", options=ClashingOptions))

    register_plugin(Plugin(), distribution="omni-plugin-acme")
    assert main(["sft", "--help"]) == 2
    assert "dataset 'acme-rows' (omni-plugin-acme) redefines option(s) ['seed']" in capsys.readouterr().err
