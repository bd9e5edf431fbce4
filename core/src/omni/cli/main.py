"""Entry point of the `omni` console script."""

from __future__ import annotations

import os
import sys
import traceback
import warnings

from omni import __version__
from omni.cli.invocation import HelpShown, parse_invocation, print_error
from omni.errors import OmniError
from omni.options import suggest

USAGE = """usage: omni [--version] [--debug] COMMAND [options]

omni trains and serves models of every modality from one CLI.
Every command takes --config RUN.YAML; flags override it. `omni COMMAND --help` shows a command's options,
including those of the plugins it selects (e.g. `omni sft --tuner lora --help`).

global options:
  -h, --help   show this help
  --version    print omni's version and exit
  --debug      show full tracebacks for errors (also OMNI_DEBUG=1)
"""


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"omni: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the omni CLI with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("OMNI_DEBUG", "") not in ("", "0")
    while args and args[0] in ("--debug", "--version"):
        if args.pop(0) == "--version":
            print(f"omni {__version__}")
            return 0
        debug = True
    warnings.formatwarning = _format_warning
    try:
        return _run(args, debug)
    except OmniError as exc:
        if debug:
            traceback.print_exc()
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except Exception as exc:  # a bug, not a user mistake: say so, and show the traceback on request
        if debug:
            traceback.print_exc()
        print_error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


def _run(args: list[str], debug: bool) -> int:
    from omni.plugins import get_registry

    registry = get_registry()
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE + "\ncommands:")
        for reg in registry.all("commands"):
            print(f"  {reg.spec.name:<14} {reg.spec.description}")
        return 0
    name, rest = args[0], args[1:]
    if name.startswith("-"):
        raise OmniError(f"unknown option {name!r}; options go after the command (`omni COMMAND {name}`)")
    registration = registry.find("commands", name)
    if registration is None:
        names = registry.names("commands")
        raise OmniError(f"unknown command {name!r}{suggest(name, names)}; commands: {', '.join(names)}")
    try:
        invocation = parse_invocation(registration.spec, rest, registry, debug=debug)
    except HelpShown as shown:
        return shown.code
    result = registration.spec.load()(invocation)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
