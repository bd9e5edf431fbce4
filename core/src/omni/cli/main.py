"""Entry point of the `omni` console script."""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings

from omni import __version__
from omni.cli.invocation import HelpShown, parse_invocation, print_error
from omni.errors import ImplementationError, OmniError
from omni.options import suggest

USAGE = """usage: omni [--version] [--debug] COMMAND [options]  (global options may also follow the command)

omni trains and serves models of every modality from one CLI.
Every command takes --config RUN.YAML; flags override it. `omni COMMAND --help` shows a command's options,
including those of the plugins it selects (e.g. `omni sft --tuner lora --help`).

global options:
  -h, --help   show this help
  --version    print omni's version and exit
  --debug      show full tracebacks for errors and libraries' deprecation notices (also OMNI_DEBUG=1)
"""


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"omni: warning: {message}\n"


# Notices that the libraries omni drives (transformers, trl, peft, torch ...) give their callers about their own
# API: a user of the CLI cannot act on them, so they are shown only with --debug. omni's own warnings stay.
_LIBRARY_NOTICES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _is_omnis(logger_name: str) -> bool:
    return logger_name.startswith("omni")  # omni and its plugins (omni_plugin_*)


# Log records libraries write for their developers rather than for a user of the CLI, by the logger that writes
# them and how they start: bitsandbytes missing an optional CPU kernel from the hub (logged on import on CPUs with
# AVX-512 BF16), transformers reading the mrope keys Qwen's published configs carry, DeepSpeed finding no GPU.
_SOURCE_NOTICES = {
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
    "transformers.modeling_rope_utils": "Unrecognized keys in `rope_parameters`",
    "DeepSpeed": "Setting accelerator to CPU",
}


def _is_not_a_library_notice(record: logging.LogRecord) -> bool:
    """False for deprecations (transformers logs some instead of warning) and the notices of `_SOURCE_NOTICES`."""
    message = record.getMessage()
    notice = _SOURCE_NOTICES.get(record.name)
    return "deprecat" not in message.lower() and not (notice and message.startswith(notice))


class _LoggerWithoutNotices(logging.Logger):
    """A library's logger that drops the notices meant for that library's developers."""

    def __init__(self, name: str, level: int = logging.NOTSET) -> None:
        super().__init__(name, level)
        if not _is_omnis(name):
            self.addFilter(_is_not_a_library_notice)


def hide_library_deprecations() -> None:
    """Hide libraries' deprecation warnings and deprecation log records from here on (omni's own stay)."""
    for category in _LIBRARY_NOTICES:
        warnings.filterwarnings("ignore", category=category)
    # transformers merging the loading settings omni passes (decompress) into a quantized checkpoint's own config.
    warnings.filterwarnings("ignore", message="You passed `quantization_config` or equivalent parameters")
    # A logger's filters see only its own records, so every library logger gets one: those created from now on
    # (libraries are imported after this) and any already there.
    logging.setLoggerClass(_LoggerWithoutNotices)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and not _is_omnis(name):
            logger.addFilter(_is_not_a_library_notice)


def main(argv: list[str] | None = None) -> int:
    """Run the omni CLI with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--version" in args:
        print(f"omni {__version__}")
        return 0
    debug = "--debug" in args or os.environ.get("OMNI_DEBUG", "") not in ("", "0")
    args = [arg for arg in args if arg != "--debug"]  # a global flag: before or after the command
    warnings.formatwarning = _format_warning
    if not debug:
        hide_library_deprecations()
    try:
        return _run(args, debug)
    except ImplementationError as exc:
        if debug:
            traceback.print_exc()
        from omni.plugins import get_host

        exc.registration = get_host().registry.registration_of(exc.spec)
        print_error(str(exc))
        return 2
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
    from omni.plugins import get_host

    # `omni plugins` diagnoses broken plugins, so it loads them leniently whatever OMNI_STRICT_PLUGINS says.
    host = get_host(lenient=args[:1] == ["plugins"])
    if debug:
        for failed in host.errors:
            sys.stderr.write(f"omni: {failed.label}:\n{failed.traceback or failed.error}\n")
    registry = host.registry
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
