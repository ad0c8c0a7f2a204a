"""Export writes are atomic: a full disk, a read-only folder or a kill leave the previous export whole."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ExportError
from engine.export import ExportOptions, export_dataset, recover_interrupted
from engine.models import Pair, PairStatus
from engine.store import Store
from tests.test_export_support import build_project

ROOT = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_existing_folder_needs_force(project, tmp_path):
    build_project(project)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="pass --force"):
        export_dataset(project, out, ExportOptions())
    assert (out / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert export_dataset(project, tmp_path / "empty", ExportOptions()).exported > 0
    with pytest.raises(ExportError, match="holds the project itself"):
        export_dataset(project, project.root.parent, ExportOptions(force=True))


def test_disk_full_keeps_previous_export(project, tmp_path, monkeypatch):
    """A full disk cannot be made safely here, so a test double: the JSONL writer raises ENOSPC."""
    build_project(project)
    out = tmp_path / "out"
    export_dataset(project, out, ExportOptions(formats=["messages", "alpaca"]))
    before = _snapshot(out)

    import engine.export.writer as writer

    real_write = writer._JsonlFiles.write
    calls = {"n": 0}

    def failing_write(self, conv, split):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, conv, split)

    monkeypatch.setattr(writer._JsonlFiles, "write", failing_write)
    with pytest.raises(ExportError) as info:
        export_dataset(project, out, ExportOptions(formats=["all"], force=True))
    message = str(info.value)
    assert "disk" in message and "full" in message and "untouched" in message and "\n" not in message
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "out") == []


def test_disk_full_while_writing_parquet_keeps_previous_export(project, tmp_path, monkeypatch):
    """The Parquet batches are written on a worker thread; its failure still reaches the caller as
    one sentence and leaves the previous export whole."""
    build_project(project)
    out = tmp_path / "out"
    export_dataset(project, out, ExportOptions(formats=["messages"]))
    before = _snapshot(out)

    import engine.export.hf as hf

    def failing_batch(self, split, columns):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hf.HfDatasetWriter, "_write_batch", failing_batch)
    with pytest.raises(ExportError, match=r"full.*untouched"):
        export_dataset(project, out, ExportOptions(formats=["all"], force=True))
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "out") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_one_sentence(project, tmp_path):
    build_project(project)
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            export_dataset(project, parent / "out", ExportOptions())
    finally:
        parent.chmod(0o700)


def test_permission_error_at_swap_keeps_previous_export(project, tmp_path, monkeypatch):
    """Tests run as root here, where folder permissions are not enforced, so a test double:
    the rename that swaps the new export in raises EACCES."""
    build_project(project)
    out = tmp_path / "out"
    export_dataset(project, out, ExportOptions())
    before = _snapshot(out)
    import engine.export.atomic as atomic

    real_rename = os.rename

    def refusing_rename(src, dst):
        if ".export-" in str(src):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", refusing_rename)
    with pytest.raises(ExportError, match=r"permission denied.*untouched"):
        export_dataset(project, out, ExportOptions(formats=["alpaca"], force=True))
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "out") == []


def _big_project(root: Path, n: int) -> None:
    store = Store.init(root)
    base = build_project(store, n=10)
    template = base[0]
    extra = [
        Pair.simple(f"Question {i}: " + "how does the tidal pump behave? " * 20,
                    f"Answer {i}: " + "it drains the intake and primes itself. " * 60,
                    status=PairStatus.ACCEPTED, mode=template.mode, kind=template.kind, split="train")
        for i in range(n)
    ]
    store.add_pairs(extra)
    store.close()


_EXPORT_SCRIPT = """
import sys
from engine.export import ExportOptions, export_dataset
from engine.store import Store
store = Store.open(sys.argv[1])
def report(p):
    print(p.done, p.total, p.stage, flush=True)
export_dataset(store, sys.argv[2], ExportOptions(formats=["all"], force=True), on_progress=report)
print("finished", flush=True)
"""


def test_sigkill_mid_export_leaves_previous_export_whole(tmp_path):
    project_dir = tmp_path / "project"
    _big_project(project_dir, 4000)
    out = tmp_path / "out"
    with Store.open(project_dir) as store:
        export_dataset(store, out, ExportOptions(formats=["messages"], kinds=["refusal"]))
    before = _snapshot(out)

    proc = subprocess.Popen([sys.executable, "-c", _EXPORT_SCRIPT, str(project_dir), str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    killed = False
    for line in proc.stdout:
        words = line.split()
        if words[-1] == "writing" and 0 < int(words[0]) < int(words[1]):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=60)
    assert killed, "the export finished before it could be interrupted"
    # The staging folder was mid-write when killed, and it is hidden beside the target.
    assert any(".export-" in name for name in _leftovers(tmp_path, "out"))
    assert _snapshot(out) == before
    assert not list(out.rglob("*.tmp*"))

    # The next export clears what the killed one left behind.
    with Store.open(project_dir) as store:
        result = export_dataset(store, out, ExportOptions(formats=["messages"], kinds=["refusal"], force=True))
    assert result.exported > 0
    assert _leftovers(tmp_path, "out") == []


def test_swap_interrupted_between_renames_restores_previous(tmp_path):
    dead_pid = 2**22 + 17  # above the default pid_max, so no live process has it
    previous = tmp_path / f".out.previous-{dead_pid}-abcd1234"
    previous.mkdir()
    (previous / "README.md").write_text("old card")
    recover_interrupted(tmp_path / "out")
    assert (tmp_path / "out" / "README.md").read_text() == "old card"
    assert not previous.exists()
