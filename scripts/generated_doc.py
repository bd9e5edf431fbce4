"""Writing a generated documentation page, or with --check only saying whether the committed one is current."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(page: Path, text: str, script: str, argv: list[str]) -> int:
    """Write `text` to `page`; with ``--check`` in `argv`, exit status 1 (naming `script`) if `page` differs."""
    if "--check" in argv:
        if (page.read_text(encoding="utf-8") if page.exists() else "") != text:
            print(f"{page} is out of date: run .venv/bin/python {script}", file=sys.stderr)
            return 1
        return 0
    page.write_text(text, encoding="utf-8")
    print(f"wrote {page}")
    return 0
