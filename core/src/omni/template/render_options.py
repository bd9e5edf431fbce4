"""Flags of `omni template render` (light: imported when the CLI builds its parser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.options import option
from omni.template.options import TemplateCliOptions


@dataclass
class TemplateRenderOptions(TemplateCliOptions):
    """`omni template render`: which row, which model's tokenizer, how to print."""

    action: Literal["render"] = option(
        "render", help="render: print a row as tokens, trained ones marked", positional=True
    )
    model: str = option(
        "smollm2-135m-instruct", help="model whose tokenizer and family template are used: a local folder or hub id"
    )
    dataset: str = option("", help="the row's dataset: a file, a datasets folder or a registered dataset name")
    index: int = option(0, help="which row to show (0-based, in file order)")
    json: bool = option(False, help="print machine-readable JSON: one entry per token")
