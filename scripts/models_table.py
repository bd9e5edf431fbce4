"""Write docs/models.md, the table of model families, from `omni list models --json` (or with --check, say whether
it is current).

    .venv/bin/python scripts/models_table.py          # rewrite docs/models.md
    .venv/bin/python scripts/models_table.py --check  # exit 1 when docs/models.md differs from what is registered

One row per family the installed plugins register: its distribution, the architectures and hub ids that select
it, its template, modalities, the parts its --freeze-* flags act on, and where its distribution's tests are.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from generated_doc import write_or_check

REPO = Path(__file__).resolve().parents[1]
MODELS_DOC = REPO / "docs" / "models.md"

HEADER = """# Model families

Generated from `omni list models --json` by `scripts/models_table.py`; do not edit (a test checks it is current).
A checkpoint selects its family by `config.json`'s architectures (then its model type), a hub id by the most
specific matching pattern; `--model-type NAME` forces one. `default` is the tokenizer's own chat template and
`multimodal` the vision-language processor's (see [templates.md](templates.md)); both give exactly the ids the
published template gives and train only the answers. Parts are what `--freeze-llm`, `--freeze-vit` and
`--freeze-aligner` act on (`--freeze-audio` for audio towers). "Tests" is the folder of the distribution's tests
(for the families table: `test_families.py`, parametrized by family).

## Hubs

`--model ORG/NAME` is a Hugging Face hub id by default: transformers reads it from the local hub cache
(`HF_HUB_CACHE`, `HF_HUB_OFFLINE=1` for no network) or downloads it. `--use-hf false` makes it a ModelScope id, as in
ms-swift (whose default it is): omni-core's `modelscope` extra (`pip install "omni-core[modelscope]"`, installed by
`scripts/setup.sh`) fetches it into ModelScope's cache (`MODELSCOPE_CACHE`; a cached snapshot is used without asking
the hub) and the run goes on from that folder. Every command that takes `--model` takes `--use-hf` and `--model-type`
(`omni template render` too). `tests/core/test_model_hubs.py` reads both hubs from pre-filled caches.

## Families

| family | distribution | architectures / hub ids | template | modalities | parts (llm; vision; aligner) | tests |
| --- | --- | --- | --- | --- | --- | --- |
"""


def registered_families() -> list[dict[str, Any]]:
    """The model families as `omni list models --json` prints them."""
    from omni.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["list", "models", "--json"])
    if status != 0:
        raise SystemExit(f"omni list models --json exited with {status}")
    return json.loads(out.getvalue())


def _code(items: list[str]) -> str:
    return ", ".join(f"`{item}`" for item in items) if items else "-"


def _tests_of(distribution: str) -> str:
    """The distribution's tests folder in this repository (omni-core's: tests/core)."""
    if distribution == "omni-core":
        return "`tests/core`"
    folders = sorted(REPO.glob(f"plugins/*/{distribution}/tests"))
    return f"`{folders[0].relative_to(REPO)}`" if folders else "-"


def _parts(parts: dict[str, list[str]] | None) -> str:
    if not parts:
        return "-"
    return "; ".join(_code(parts.get(part) or []) for part in ("llm", "vision", "aligner"))


def render(families: list[dict[str, Any]]) -> str:
    """docs/models.md for these families."""
    rows = []
    for family in families:
        selects = _code([*family["architectures"], *family["hub_ids"]])
        rows.append(
            f"| `{family['name']}` | {family['distribution']} | {selects} | {family['template'] or 'default'} | "
            f"{', '.join(family['modalities'])} | {_parts(family['parts'])} | {_tests_of(family['distribution'])} |"
        )
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(MODELS_DOC, render(registered_families()), "scripts/models_table.py", argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
