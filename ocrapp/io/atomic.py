"""Write outputs so that a reader never sees a half-written file: temp file in the same folder, fsync,
then os.replace (atomic on POSIX and Windows within one filesystem)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ocrapp.errors import OutputFileError


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``data`` atomically; OutputFileError (one line) if it cannot be written."""
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    if path.is_dir():
        raise OutputFileError(f"{path}: is a directory")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputFileError(f"{path}: folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise OutputFileError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        raise
