"""`omni new-plugin KIND NAME`: the text templates of a complete plugin distribution for every kind of spec.

Each KIND folder holds `entry.py.tmpl` (the light entry module that registers the spec), `impl.py.tmpl`
(the implementation, imported only when used) and `test.py.tmpl`; `common/` holds what every kind shares.
The generated code imports only `omni.api` (and `omni.testing` in its tests).
"""

from __future__ import annotations

from typing import Literal, get_args

ScaffoldKind = Literal[
    "model",
    "dataset",
    "template",
    "tuner",
    "reward",
    "algorithm",
    "engine",
    "quantizer",
    "encoder",
    "strategy",
    "callback",
    "command",
]
SCAFFOLDED_KINDS: tuple[str, ...] = get_args(ScaffoldKind)
