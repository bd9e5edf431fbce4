"""`--eval-backend evalscope`: refused with the reason, because EvalScope cannot run beside omni's pinned stack.

Checked 2026-12-04 with ``pip install --dry-run -c constraints.txt evalscope``: every evalscope 1.x (1.0.0 to 1.5.1)
pins ``datasets==3.6.0`` while omni pins datasets 5.2.0; the newest release pip does resolve, 0.16.3, comes with
modelscope 1.13.3, and ``import evalscope`` then fails (``cannot import name 'get_dataset_cache_root' from
'modelscope.utils.file_utils'``). docs/eval.md shows how to run EvalScope from its own environment against
``omni serve``, which is what ms-swift's ``swift eval`` does in-process.
"""

from __future__ import annotations

from typing import Any

from omni.api import OmniError

REASON = (
    "--eval-backend evalscope is unavailable: EvalScope does not install beside omni's stack (evalscope 1.x pins "
    "datasets==3.6.0, omni needs datasets 5.2; 0.16.3 resolves but fails to import with modelscope 1.13.3); use "
    "the native benchmarks, or run EvalScope in its own environment against `omni serve` (docs/eval.md)"
)


def run_evalscope(invocation: Any) -> int:
    """Refuse in one line, saying why and what to do instead."""
    raise OmniError(REASON)
