"""The public plugin API: `omni.api` is light, documented, and the only part of omni plugins here use."""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import omni.api

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm", "deepspeed", "bitsandbytes")

# An `impl` (or other) string naming omni code: "omni.module:attr".
OMNI_REFERENCE = re.compile(r"omni(\.\w+)*:[\w.]+")


def distribution_of(path: Path) -> str:
    return path.relative_to(PLUGINS).parts[1]


# The tests beside this repository's plugins are also integration tests of core: these core modules (driving the
# CLI in-process, installing a chosen plugin set, serving an engine in a thread, the trainer's loss and collators)
# they may still import. A third party's tests need only omni.api and omni.testing, as the scaffolds' do.
CORE_MODULES_IN_PLUGIN_TESTS = {
    "omni.cli.main", "omni.cli.invocation", "omni.plugins", "omni.template", "omni.template.default",
    "omni.models.embedded", "omni.models.resolve", "omni.train.trainer", "omni.train.options",
    "omni.train.collators", "omni.data", "omni.data.resolve", "omni.data.convert", "omni.serve.app",
    "omni.serve.background", "omni.infer.remote",
}  # fmt: skip


def _allowed(module: str, path: Path, plugins: Path) -> bool:
    """omni.api everywhere; omni.testing in tests and in a plugin's own `testing` module (tiny checkpoints of its
    family, for other plugins' tests); the listed core modules in tests."""
    if module == "omni.api":
        return True
    in_tests = "tests" in path.relative_to(plugins).parts
    if module == "omni.testing" or module.startswith("omni.testing."):
        return in_tests or path.stem == "testing"
    return in_tests and module in CORE_MODULES_IN_PLUGIN_TESTS


def boundary_violations(path: Path, plugins: Path = PLUGINS) -> list[str]:
    """`file:line: ...` for every import of omni that `_allowed` does not allow, and every
    `"omni.module:attr"` reference outside `omni.api`, in one file under the `plugins` folder."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(plugins.parent)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] if node.module.split(".")[0] == "omni" else []
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names if alias.name.split(".")[0] == "omni"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and OMNI_REFERENCE.fullmatch(node.value):
            module = node.value.split(":")[0]
            if module != "omni.api":
                found.append(f"{where}:{node.lineno}: refers to {node.value!r}; name it through omni.api")
            continue
        else:
            continue
        for module in modules:
            if not _allowed(module, path, plugins):
                found.append(f"{where}:{node.lineno}: imports {module}; plugins import only omni.api")
    return found


def plugin_sources() -> dict[str, list[Path]]:
    by_distribution: dict[str, list[Path]] = {}
    for path in sorted(PLUGINS.glob("*/*/**/*.py")):
        by_distribution.setdefault(distribution_of(path), []).append(path)
    return by_distribution


def test_plugins_import_only_the_public_api():
    sources = plugin_sources()
    assert len(sources) >= 15, sorted(sources)
    violations = [v for paths in sources.values() for p in paths for v in boundary_violations(p)]
    assert not violations, "\n".join(violations)


def _declared_minor(tree: ast.Module) -> int | None:
    """The minor version of a module's ``OMNI_PLUGIN_API`` (``1`` is 1.0), or None where it declares none."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "OMNI_PLUGIN_API" for t in node.targets):
            value = ast.literal_eval(node.value)
            return 0 if isinstance(value, int) else int(str(value).split(".")[1])
    return None


def test_each_plugin_declares_the_api_version_of_the_names_it_imports():
    """A plugin that imports a name added in omni.api 1.N declares OMNI_PLUGIN_API "1.N" or later, so an omni too old
    for it refuses it in one line when plugins load instead of failing at the import mid-run."""
    assert set(omni.api.ADDED_IN) <= set(omni.api.__all__)
    problems = []
    for distribution, paths in plugin_sources().items():
        declared, needed = None, {}
        for path in paths:
            if "tests" in path.relative_to(PLUGINS).parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            declared = _declared_minor(tree) if declared is None else declared
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "omni.api":
                    needed.update(
                        {a.name: omni.api.ADDED_IN[a.name] for a in node.names if a.name in omni.api.ADDED_IN}
                    )
        newest = max(needed, key=needed.get, default=None)
        if newest and (declared or 0) < needed[newest]:
            problems.append(
                f"{distribution}: imports {newest} (omni.api 1.{needed[newest]}) but declares 1.{declared or 0}"
            )
    assert not problems, "\n".join(problems)


def test_the_check_names_file_and_line(tmp_path):
    plugins = tmp_path / "plugins"
    entry = plugins / "models" / "omni-plugin-acme" / "src" / "omni_plugin_acme" / "__init__.py"
    entry.parent.mkdir(parents=True)
    entry.write_text(
        'from omni.api import hookimpl\nfrom omni.registry import ModelSpec\nLOADER = "omni.models.loader:load"\n'
    )
    test = plugins / "models" / "omni-plugin-acme" / "tests" / "test_acme.py"
    test.parent.mkdir(parents=True)
    test.write_text("from omni.testing import build_tiny\nimport omni.registry\n")
    where = "plugins/models/omni-plugin-acme"
    assert boundary_violations(entry, plugins) == [
        f"{where}/src/omni_plugin_acme/__init__.py:2: imports omni.registry; plugins import only omni.api",
        f"{where}/src/omni_plugin_acme/__init__.py:3: refers to 'omni.models.loader:load'; name it through omni.api",
    ]
    assert boundary_violations(test, plugins) == [
        f"{where}/tests/test_acme.py:2: imports omni.registry; plugins import only omni.api"
    ]
    builder = entry.with_name("testing.py")  # tiny checkpoints of the plugin's family, for other plugins' tests
    builder.write_text("from omni.testing import build_tiny\nfrom omni.train.trainer import OmniTrainer\n")
    assert boundary_violations(builder, plugins) == [
        f"{where}/src/omni_plugin_acme/testing.py:2: imports omni.train.trainer; plugins import only omni.api"
    ]


def test_every_exported_name_resolves_and_is_documented():
    undocumented = []
    for name in omni.api.__all__:
        value = getattr(omni.api, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            own = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
            # dataclasses write a signature as the docstring of a class that has none
            if not (own or "").strip() or own.startswith(f"{value.__name__}("):
                undocumented.append(name)
        elif not callable(value):
            assert re.search(rf"`{name}`", omni.api.__doc__ or ""), f"omni.api's docstring does not describe {name}"
    assert undocumented == []


def test_api_version_carries_the_plugin_api_major():
    major, minor = omni.api.API_VERSION.split(".")
    assert int(major) == omni.api.PLUGIN_API_VERSION and int(minor) >= 0


def test_importing_the_api_stays_light():
    probe = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import omni.api\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith('omni.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    heavy_line, omni_line = result.stdout.splitlines()
    assert json.loads(heavy_line) == []
    # Only the modules a plugin's entry module needs: no models, templates, training or inference code yet.
    assert not {m for m in json.loads(omni_line) if m.split(".")[1] in ("train", "infer", "models", "template")}


def test_lazy_names_resolve_to_their_implementations():
    from omni.train.tuner import Tuner

    assert omni.api.Tuner is Tuner
    assert omni.api.import_ref("omni.api:Tuner") is Tuner
