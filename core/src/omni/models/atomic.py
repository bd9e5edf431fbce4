"""Write folders and files so that readers see either nothing or the complete result.

A checkpoint folder or an output file is first written under a temporary name next to its target and
renamed into place at the end, so a killed process never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_directory(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `target` in one rename.

    Without `replace`, an existing `target` raises `FileExistsError` and is left untouched (another
    process finished first). With `replace`, an existing `target` is swapped out and deleted. On an
    exception the temporary folder is removed and `target` is unchanged.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary shared folder
    try:
        yield tmp
        if replace and target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError as exc:  # rename onto an existing non-empty folder fails on POSIX
                if target.exists():
                    raise FileExistsError(f"{target} already exists") from exc
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_text_file(target: Path) -> Iterator[IO[str]]:
    """Yield a text file open for writing; on success it replaces `target` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)  # mkstemp makes it private; the result is an ordinary shared file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
