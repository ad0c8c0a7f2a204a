"""Atomic export folders: everything is written into a hidden staging folder beside the
target, then swapped in with renames, so the target holds either the complete previous
export or the complete new one, never a partial file (even after ``kill -9``)."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from engine.errors import ExportError
from engine.processes import pid_alive

_STAGING_TAG = ".export-"
_PREVIOUS_TAG = ".previous-"


def _owner_pid(name: str, tag: str) -> int | None:
    try:
        return int(name.rsplit(tag, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def describe_os_error(exc: OSError, out_dir: Path) -> str:
    """One sentence naming what failed and the fix, for a write error during export."""
    where = out_dir.parent
    kept = f"the previous export in {out_dir} is untouched" if out_dir.exists() else "nothing was written"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk holding {where} is full: free some space and export again; {kept}."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write to {where}: permission denied; choose a writable folder or fix its permissions; {kept}."
    reason = exc.strerror or str(exc)
    return f"Writing the export to {out_dir} failed ({reason}); check the folder and try again; {kept}."


class StagingFolder:
    """A hidden folder beside ``target`` that becomes ``target`` on :meth:`commit`.

    Use as a context manager: leaving without commit (an error) deletes the staging folder
    and leaves ``target`` as it was.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.parent = target.parent
        token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = self.parent / f".{target.name}{_STAGING_TAG}{token}"
        self._previous = self.parent / f".{target.name}{_PREVIOUS_TAG}{token}"
        self.committed = False

    def __enter__(self) -> StagingFolder:
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            recover_interrupted(self.target)
            self.path.mkdir()
        except OSError as exc:
            raise ExportError(describe_os_error(exc, self.target)) from exc
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> None:
        """Swap the staging folder in place of the target; the old target is removed after."""
        moved_previous = False
        try:
            if self.target.exists():
                os.rename(self.target, self._previous)
                moved_previous = True
            os.rename(self.path, self.target)
        except OSError as exc:
            if moved_previous and not self.target.exists():
                os.rename(self._previous, self.target)
            raise ExportError(describe_os_error(exc, self.target)) from exc
        self.committed = True
        if moved_previous:
            shutil.rmtree(self._previous, ignore_errors=True)


def recover_interrupted(target: Path) -> None:
    """Clean up after an export killed mid-way: delete dead staging folders, and put back a
    previous export whose swap was interrupted between its two renames."""
    prefix = f".{target.name}"
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        name = entry.name
        if not name.startswith(prefix) or not entry.is_dir():
            continue
        for tag in (_STAGING_TAG, _PREVIOUS_TAG):
            if not name.startswith(prefix + tag):
                continue
            pid = _owner_pid(name, tag)
            if pid is None or (pid_alive(pid) and pid != os.getpid()):
                continue
            if tag == _PREVIOUS_TAG and not target.exists():
                os.rename(entry, target)
            else:
                shutil.rmtree(entry, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
