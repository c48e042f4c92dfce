"""Internal file helpers: atomic writes and JSON-ready conversion.

Every export in promptseg (mask PNGs, COCO JSON, overlays) writes through
:func:`atomic_write`, so an interrupted or failed export never leaves a half-written file
behind: the data goes to a temporary file in the destination folder, which then replaces
the destination in one ``os.replace`` call (atomic on POSIX and Windows when both paths are
on the same file system, which a sibling temp file guarantees).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "to_jsonable"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success move it onto ``path`` atomically.

    The temporary file lives in the same folder as ``path`` and keeps its suffix (e.g.
    ``.mask_000.png.1a2b3c4d.tmp.png``), so writers that pick a format from the file
    extension (PIL) still work. The folder is created if needed. If the ``with`` body
    raises, the temporary file is removed and ``path`` is left untouched (an existing file
    keeps its old content). If the body finishes without creating the temporary file,
    ``FileNotFoundError`` is raised and nothing is written.

    Args:
        path: destination file.
        fsync: flush the temporary file to disk before the rename, so the new content
            also survives a power loss (slower; off by default).

    Yields:
        The temporary :class:`~pathlib.Path` the caller must write.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_write(out) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> out.read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {path} (temporary file {tmp})")
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (dict, list, str, int, float, bool, None).

    numpy scalars and arrays become Python numbers and (nested) lists, tuples and sets
    become lists, paths become strings, dataclasses become dicts, enums their value, and
    non-finite floats (``nan``, ``inf``) become ``None`` because JSON has no spelling for
    them. Dict keys become strings. Anything else becomes its ``str``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    return str(obj)
