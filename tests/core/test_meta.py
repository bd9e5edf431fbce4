"""Every hook has a docstring, a section in docs/hooks.md and a test in tests/core/test_hooks.py."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from omni import hookspecs

from tests.core import test_hooks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "omni_spec"))


def test_hooks_are_found():
    assert len(HOOKS) >= 10


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_docs_section_and_test(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    sections = re.findall(r"^## `?(\w+)", DOCS.read_text(encoding="utf-8"), flags=re.M)
    assert hook in sections, f"docs/hooks.md has no '## {hook}' section"
    section = DOCS.read_text(encoding="utf-8").split(f"## {hook}", 1)[1].split("\n## ", 1)[0]
    assert f"def {hook}(register" in section, f"docs/hooks.md '{hook}' section lacks its signature/example"
    assert callable(getattr(test_hooks, f"test_{hook}", None)), f"tests/core/test_hooks.py has no test_{hook}"
