"""Finding the files to import: folders walked recursively, with every skip explained.

Ignore patterns match file and folder names (fnmatch) below the paths given; a path
given explicitly is always considered. Symlinks are followed, but a folder already on
the walk (same device and inode) is a loop and is skipped, as is the project folder.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path


@dataclass(frozen=True)
class FoundFile:
    """A file to import: where it is, and the document path it is stored under."""

    path: Path
    key: str
    size: int


@dataclass(frozen=True)
class SkippedPath:
    """A path not imported, why, and whether it counts as a failure (missing, unreadable)."""

    path: str
    reason: str
    failed: bool = False


def document_key(path: Path, root: Path) -> str:
    """The stored document path: relative to the parent of the import root, '/'-separated.

    Importing ``docs/`` stores ``docs/guide/intro.md``; importing a single file stores its
    name. So re-importing the same folder from the same parent finds the same documents.
    """
    try:
        return path.relative_to(root.parent).as_posix()
    except ValueError:
        return path.as_posix()


def _ignored(name: str, patterns: Sequence[str]) -> str | None:
    for pattern in patterns:
        if fnmatch(name, pattern):
            return pattern
    return None


def discover(
    paths: Sequence[str | Path], *, ignore: Sequence[str], project_root: Path
) -> Iterator[FoundFile | SkippedPath]:
    """Yield every file to import under ``paths``, and every path skipped with its reason."""
    project_real = project_root.resolve()
    seen_files: set[tuple[int, int]] = set()
    for given in paths:
        root = Path(given).expanduser().absolute()
        if not root.exists() and not root.is_symlink():
            yield SkippedPath(str(given), f"{given} does not exist: check the path and try again.", failed=True)
            continue
        yield from _walk(root, root, ignore, project_real, set(), seen_files, top=True)


def _walk(
    path: Path,
    root: Path,
    ignore: Sequence[str],
    project_real: Path,
    ancestors: set[tuple[int, int]],
    seen_files: set[tuple[int, int]],
    *,
    top: bool = False,
) -> Iterator[FoundFile | SkippedPath]:
    shown = str(path)
    if not top and (pattern := _ignored(path.name, ignore)):
        yield SkippedPath(shown, f"{path.name} matches the ignore pattern {pattern!r}.")
        return
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            yield SkippedPath(shown, f"{shown} is a symlink loop: it was skipped; remove or fix the link.")
        elif path.is_symlink():
            yield SkippedPath(shown, f"{shown} is a broken symlink: it was skipped; fix its target.")
        else:
            yield SkippedPath(shown, f"{shown} cannot be read ({exc.strerror}): check its permissions.", failed=True)
        return
    identity = (info.st_dev, info.st_ino)
    real = path.resolve()
    if real == project_real or project_real in real.parents:
        yield SkippedPath(shown, f"{shown} is inside the project folder itself, which is never imported.")
        return
    if path.is_dir():
        if identity in ancestors:
            yield SkippedPath(shown, f"{shown} is a symlink loop back to {real}: it was skipped.")
            return
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            yield SkippedPath(shown, f"{shown} cannot be listed ({exc.strerror}): check its permissions.", failed=True)
            return
        below = ancestors | {identity}
        for entry in entries:
            yield from _walk(Path(entry.path), root, ignore, project_real, below, seen_files)
        return
    if not path.is_file():
        yield SkippedPath(shown, f"{shown} is not a regular file (a device, socket or pipe).")
        return
    if identity in seen_files:
        yield SkippedPath(shown, f"{shown} is the same file as one already imported (a link to it).")
        return
    seen_files.add(identity)
    yield FoundFile(path=path, key=document_key(path, root), size=info.st_size)
