"""Atomic file writes (standard library only): a reader never sees a half-written file.

Shared by every LGI writer above the leaves (lgi-train, lgi) and by the DCAE tools. Files never
surprise: :func:`check_output` lets a command fail before any work if its output cannot be written;
a read-only file is never replaced unless asked (``force``), and then keeps its mode; the temporary
file is removed on every exit path Python sees, and temporaries older than :data:`STALE_SECONDS` left
beside the output by a killed writer (SIGKILL, power loss) are swept on the next write.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

#: A temporary file beside an output this old belongs to a writer that died: it is removed.
STALE_SECONDS = 3600


class OutputError(OSError):
    """An output file cannot, or may not, be written; the message names the file and the reason."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_only(path: Path) -> bool:
    # os.access alone says "writable" to root for every file; the mode bits say what the owner meant.
    return not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222


def sweep_stale_temporaries(path: str | os.PathLike, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove ``.NAME.*.tmp`` files beside ``path`` older than ``max_age`` seconds; returns them."""
    path = Path(path)
    removed = []
    now = time.time()
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > max_age:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # another process removed it, or it is not ours to remove
    return removed


def check_output(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Fail now, before any work, unless ``path`` can be written by :func:`atomic_open`.

    Args:
        path: the output file (its missing parent folders will be created).
        force: allow replacing an existing read-only file.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        OutputError: ``path`` is a folder, an existing read-only file (without ``force``), or its
            folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder, expected a file path")
    if path.exists() and not force and _read_only(path):
        raise OutputError(f"output {path} exists and is read-only; pass --force to replace it")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: folder {folder} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextmanager
def atomic_open(path: str | os.PathLike, *, force: bool = False) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; on success it replaces ``path``.

    A failure leaves the old file (if any) in place and no temporary file behind. An existing
    read-only ``path`` is refused (:class:`OutputError`) unless ``force``; a replaced file keeps its
    permission bits.
    """
    path = Path(path)
    mode = 0o666 & ~_umask()  # mkstemp makes 0600 files; give the usual permissions
    if path.exists() and not path.is_dir():
        if not force and _read_only(path):
            raise OutputError(f"output {path} exists and is read-only; it was left as it is")
        mode = stat.S_IMODE(path.stat().st_mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, force=force) as f:
        f.write(data)
