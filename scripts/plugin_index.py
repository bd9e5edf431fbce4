"""Print (or with --write, save) omni-core's plugin index from the plugins in this repository.

Run it in the virtual environment `scripts/setup.sh` builds (every plugin installed), after a plugin here
registers something new: `.venv/bin/python scripts/plugin_index.py --write`. See `omni.plugin_index`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tomllib
from omni.plugin_index import INDEX_FILE, index_of
from omni.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]


def repository_distributions() -> set[str]:
    """The names of the plugin distributions in this repository's plugins/ folder."""
    return {
        tomllib.loads(p.read_text(encoding="utf-8"))["project"]["name"]
        for p in (REPO / "plugins").glob("*/*/pyproject.toml")
    }


def main(argv: list[str]) -> int:
    index = index_of(load_plugins({}), repository_distributions())
    text = json.dumps(index, indent=2) + "\n"
    if "--write" in argv:
        INDEX_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {INDEX_FILE} ({len(index['distributions'])} distributions)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
