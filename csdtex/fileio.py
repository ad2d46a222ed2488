"""Atomic file writing: outputs appear complete or not at all.

Every file csdtex writes is first written to a temporary file in the destination folder and then renamed into place
(``os.replace`` is atomic on POSIX and Windows within one file system), so an interrupted run never leaves a
half-written output behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
from pathlib import Path
from typing import Iterator


_STAGED: contextvars.ContextVar[list[tuple[Path, Path]] | None] = contextvars.ContextVar("csdtex_staged_outputs",
                                                                                        default=None)


@contextlib.contextmanager
def staged_outputs() -> Iterator[None]:
    """Make every file written with :func:`atomic_path` inside the block appear together when the block ends: each
    stays a temporary file next to its destination until then, and all are renamed into place in one quick pass at
    the end, or all removed if the block raises (Ctrl-C included). So a run's outputs (model files, textures,
    previews, record) are never left half old, half new.

    Scoped to the block and to the current thread / task (a context variable, not process-wide state); blocks nest
    (an inner block's files join the outer one's). Inside the block a staged file is not at its destination yet:
    :func:`staged_destinations` lists them.
    """
    outer = _STAGED.get()
    staged: list[tuple[Path, Path]] = [] if outer is None else outer
    token = _STAGED.set(staged)
    try:
        yield
    except BaseException:
        if outer is None:
            for temporary, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
        raise
    finally:
        _STAGED.reset(token)
    if outer is None:
        for temporary, destination in staged:
            os.replace(temporary, destination)


def staged_destinations() -> list[Path]:
    """The destinations of the files staged so far by the enclosing :func:`staged_outputs` block ([] outside one)."""
    return [destination for _, destination in _STAGED.get() or []]


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; on success rename it onto ``destination``.

    The temporary file keeps the destination's suffix so that writers that pick a format by extension (PIL, imageio)
    still work. On any exception the temporary file is removed and ``destination`` is left untouched. Inside a
    :func:`staged_outputs` block the rename waits for the end of the block.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.stem}.", suffix=f".tmp{destination.suffix}", dir=destination.parent
    )
    os.close(handle)
    tmp_path = Path(tmp_name)
    os.chmod(tmp_path, 0o666 & ~_current_umask())  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp_path
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    staged = _STAGED.get()
    if staged is None:
        os.replace(tmp_path, destination)
    else:
        staged.append((tmp_path, destination))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(destination: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``destination`` atomically and return the destination path."""
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)
    return Path(destination)


def write_text_atomic(destination: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``destination`` atomically and return the destination path."""
    return write_bytes_atomic(destination, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike | None) -> str | None:
    """SHA-256 (hex) of a file's bytes, or None when it is missing or unreadable."""
    if path is None:
        return None
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` resolves to a location inside ``folder`` (symbolic links and ``..`` resolved)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def short_path(path: str | os.PathLike, limit: int = 80) -> str:
    """``path`` for a one-line message: its middle elided when it is longer than ``limit`` characters."""
    text = str(path)
    return text if len(text) <= limit else text[: limit // 2] + "..." + text[-(limit // 2):]


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, lock_name: str, busy: Exception) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` while the block runs, so that two csdtex processes never write into one
    folder at once.

    The lock is an advisory ``flock`` on ``folder / lock_name`` (released by the operating system when the process
    ends, however it ends, so a crash leaves no stale lock). The folder and its missing parents are created; on exit
    the lock file is removed, and the folders this call created are removed again when nothing else was written
    into them (a run that failed early leaves no empty output folder behind). Without ``fcntl`` (Windows) the block
    runs unlocked.

    Args:
        folder: the folder to lock.
        lock_name: the lock file's name inside it (e.g. ``".csdtex.lock"``).
        busy: the exception raised when another process holds the lock (a one-line
            :class:`csdtex.errors.CsdtexError` naming the remedy).
    Yields:
        ``folder`` as a Path.
    """
    folder = Path(folder)
    created = []
    missing = folder.absolute()
    try:
        while not missing.exists() and missing.parent != missing:
            created.append(missing)
            missing = missing.parent
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a name too long, a file system that takes no folders (/proc): one line
        from csdtex.errors import ConfigError, one_line

        raise ConfigError(f"cannot create the output folder {short_path(folder)}: "
                          f"{error.strerror or one_line(error)}; choose another --out") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    path, handle = folder / lock_name, None
    try:
        while fcntl is not None:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(handle)
                handle = None
                raise busy from None
            try:  # the previous holder may have removed the file between our open and our lock: lock the new one
                if os.fstat(handle).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(handle)
            handle = None
        yield folder
    finally:
        if handle is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(handle)
        for empty in created:  # deepest first
            with contextlib.suppress(OSError):
                empty.rmdir()
