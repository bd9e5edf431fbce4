"""`omni export`: merge a trained adapter into its base model (`--merge-lora`)."""

from __future__ import annotations

from pathlib import Path

from omni.cli.invocation import Invocation
from omni.errors import OmniError
from omni.export.options import ExportOptions


def run(invocation: Invocation) -> int:
    """Run `omni export` with the parsed flags; returns the exit status."""
    from omni.export.merge import merge_adapter

    options: ExportOptions = invocation.options
    if len(options.adapters) != 1:
        raise OmniError("pass the one adapter folder to export: omni export --adapters DIR --merge-lora")
    if not options.merge_lora:
        raise OmniError("nothing to export: add --merge-lora to fold the adapter into its base model")
    adapter_dir = Path(options.adapters[0])
    output_dir = Path(options.output_dir) if options.output_dir else adapter_dir.with_name(f"{adapter_dir.name}-merged")
    merged = merge_adapter(adapter_dir, output_dir, options, invocation.registry)
    print(f"merged model saved to {merged}")
    return 0
