"""Atomic writes: a temporary file in the destination folder, fsync, then `os.replace`.

An interrupted run (exception, Ctrl-C, SIGTERM turned into an exception by the CLI) leaves
no partial output behind: the temporary path is removed on any exit that is not a success.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from dnnkit.errors import InputError


def check_output_path(dest: str | Path, force: bool, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Validate an output path before any heavy work; return it as a Path.

    Missing parent folders are fine (the write creates them, as `mkdir -p` would); the nearest one that
    exists must be a writable folder.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot create output folder {str(parent)!r}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(existing)!r} is not writable")
    for src in inputs:
        if dest.exists() and Path(src).exists() and _same_path(dest, Path(src)):
            raise InputError(f"output {str(dest)!r} is the input; dnnkit never modifies its input",
                             hint="choose another -o path")
    if dest.exists() and not force:
        raise InputError(f"output {str(dest)!r} already exists", hint="pass --force to replace it")
    return dest


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _make_parents(dest: Path) -> None:
    """Create the missing folders above an output (one rule for every command: like `mkdir -p`)."""
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {str(parent)!r}: {exc.strerror}") from exc


def _temp_sibling(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_file(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; on success fsync it and move it into place."""
    dest = Path(dest)
    _make_parents(dest)
    tmp = _temp_sibling(dest)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent if str(dest.parent) else Path("."))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to `dest`; on success move it into place (replacing `dest`)."""
    dest = Path(dest)
    _make_parents(dest)
    tmp = _temp_sibling(dest)
    tmp.mkdir()
    old: Path | None = None
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                with open(child, "rb+") as fh:
                    os.fsync(fh.fileno())
        if dest.exists():
            old = _temp_sibling(dest)
            os.replace(dest, old)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent if str(dest.parent) else Path("."))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
