"""Chat templates: rows of the messages format to token ids and labels.

`get_template(name, processor, options, model_spec=..., registry=...)` picks and builds one; template
authors subclass `omni.template.pieces.PieceTemplate` (see docs/templates.md).
"""

from omni.template.base import (
    IGNORE_INDEX,
    Encoded,
    RowTooLongError,
    Template,
    TemplateError,
    TemplateOptions,
)
from omni.template.resolve import get_template, template_name

__all__ = [
    "IGNORE_INDEX",
    "Encoded",
    "RowTooLongError",
    "Template",
    "TemplateError",
    "TemplateOptions",
    "get_template",
    "template_name",
]
