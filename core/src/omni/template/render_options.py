"""Flags of `omni template render` (light: imported when the CLI builds its parser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omni.models.options import ModelSourceOptions
from omni.options import option
from omni.template.options import TemplateCliOptions


@dataclass
class TemplateRenderOptions(TemplateCliOptions, ModelSourceOptions):
    """`omni template render`: which row, which model's tokenizer (found as the training commands find it), how to
    print."""

    action: Literal["render"] = option(
        "render", help="render: print a row as tokens, trained ones marked", positional=True
    )
    dataset: str = option("", help="the row's dataset: a file, a datasets folder or a registered dataset name")
    index: int = option(0, help="which row to show (0-based, in file order)")
    json: bool = option(False, help="print machine-readable JSON: one entry per token")
