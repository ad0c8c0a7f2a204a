"""Documents: pick files or folders, import them in a worker, browse documents and chunks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, DirectoryTree, Input, Label, ProgressBar, Static

from engine.errors import PairForgeError
from engine.store import Store
from engine.text import strip_control
from tui.messages import EngineFailed, ImportFinished, ImportOutcome, ImportProgress, PairsChanged
from tui.path_suggester import PathSuggester
from tui.safe_text import plain
from tui.sections import Section, SectionPane
from tui.worker_errors import ReportsWorkerFailures

if TYPE_CHECKING:
    import engine.ingest


class DocumentsPane(SectionPane, ReportsWorkerFailures, Vertical):
    """Import with a progress bar and per-file errors; documents with chunk and pair counts."""

    SECTION = Section("documents", "Documents", "Docs", "Import documents and browse chunks.")

    BINDINGS = [
        Binding("ctrl+r", "import_path", "Import", id="import_path", tooltip="Import the typed or selected path.", show=False),
        Binding("ctrl+t", "toggle_tree", "Tree", id="toggle_tree", tooltip="Show or hide the directory tree."),
    ]

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store

    def compose(self) -> ComposeResult:
        yield Input(placeholder="path to a file or folder, Enter imports (tab completes)",
                    suggester=PathSuggester(), id="import-path")
        yield ProgressBar(id="import-progress", show_eta=False)
        yield Static(id="import-result")
        with Horizontal(id="documents-body"):
            yield DirectoryTree(Path.cwd(), id="import-tree")
            with Vertical(id="documents-right"):
                yield DataTable(id="documents-table", cursor_type="row")
                yield Label("Chunks of the selected document (Enter on a chunk previews it)", classes="detail-heading")
                yield DataTable(id="chunks-table", cursor_type="row")
                yield Static(id="chunk-preview")

    def on_mount(self) -> None:
        self.query_one("#documents-table", DataTable).add_columns("id", "document", "format", "chunks", "pairs")
        self.query_one("#chunks-table", DataTable).add_columns("#", "heading path", "chars")
        self.query_one("#import-tree").display = False
        self.query_one("#import-progress").display = False
        self.reload()

    def focus_home(self) -> None:
        """Focus the path box on a project without documents (a path is what comes next), else the documents."""
        table = self.query_one("#documents-table", DataTable)
        (table if table.row_count else self.query_one("#import-path", Input)).focus()

    def reload(self) -> None:
        """Re-read documents with their chunk and pair counts."""
        table = self.query_one("#documents-table", DataTable)
        table.clear()
        counts = self.store.document_pair_counts()
        for doc in self.store.list_documents():
            table.add_row(str(doc.id), Text(doc.title or Path(doc.path).name), doc.format,
                          str(doc.n_chunks), str(counts.get(doc.id or 0, 0)), key=str(doc.id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "documents-table" and event.row_key.value:
            self._show_chunks(int(event.row_key.value))
        elif event.data_table.id == "chunks-table" and event.row_key.value:
            self._preview_chunk(int(event.row_key.value))

    def _show_chunks(self, document_id: int) -> None:
        table = self.query_one("#chunks-table", DataTable)
        table.clear()
        for chunk in self.store.list_chunks(document_id):
            table.add_row(str(chunk.ordinal), plain(" › ".join(chunk.heading_path) or "(top)"),
                          str(len(chunk.text)), key=str(chunk.id))

    def _preview_chunk(self, chunk_id: int) -> None:
        chunks = self.store.get_chunks([chunk_id])
        if not chunks:
            return
        chunk = chunks[0]
        text = Text()
        text.append(strip_control(" › ".join(chunk.heading_path) or "(top)"), style="bold")
        text.append("\n")
        text.append(plain(chunk.text))
        self.query_one("#chunk-preview", Static).update(text)

    # ------------------------------------------------------------------ import

    def action_toggle_tree(self) -> None:
        """Show or hide the directory tree."""
        tree = self.query_one("#import-tree")
        tree.display = not tree.display
        if tree.display:
            tree.focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#import-path", Input).value = str(event.path)

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#import-path", Input).value = str(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "import-path":
            event.stop()
            self.action_import_path()

    def action_import_path(self) -> None:
        """Import what the path box names."""
        value = self.query_one("#import-path", Input).value.strip()
        if not value:
            self.notify("Type a file or folder path to import first.", severity="warning")
            return
        path = Path(value).expanduser()
        if not path.exists():
            self.notify(f"{path} does not exist; check the path.", severity="error")
            return
        bar = self.query_one("#import-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#import-result", Static).update(Text(f"Importing {path} …"))
        self.run_import(path)
        # The path box gives the keyboard back, so section keys (2 for Generate) work at once.
        self.query_one("#documents-table", DataTable).focus()

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def run_import(self, path: Path) -> None:
        """Run the engine's import off the UI thread, posting progress and the outcome."""
        # Imported here: the loaders pull in PDF and dataset readers the first paint does not need.
        from engine.ingest import import_paths

        def progress(update: engine.ingest.ImportProgress) -> None:
            self.post_message(ImportProgress(update.done_files, update.total_files, str(update.current)))

        outcome = ImportOutcome(failed=[(str(path), "the import stopped on an unexpected error (see the Log section)")])
        try:
            report = import_paths(self.store, [path], on_progress=progress)
            outcome = ImportOutcome(
                imported=[*report.imported, *report.replaced],
                unchanged=list(report.unchanged),
                failed=[(p.path, p.reason) for p in report.failed],
            )
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="import"))
            outcome = ImportOutcome(failed=[(str(path), str(exc))])
        finally:
            # The pane leaves its importing state whatever happened; an unexpected error goes on
            # to the App's worker-failure handler.
            self.post_message(ImportFinished(outcome))

    def on_import_progress(self, message: ImportProgress) -> None:
        message.stop()
        bar = self.query_one("#import-progress", ProgressBar)
        bar.update(total=max(message.total, 1), progress=message.done)
        self.query_one("#import-result", Static).update(plain(f"{message.done}/{message.total} {message.current}"))

    def on_import_finished(self, message: ImportFinished) -> None:
        message.stop()
        outcome = message.outcome
        bar = self.query_one("#import-progress", ProgressBar)
        bar.update(total=1, progress=1)
        text = Text(f"Imported {len(outcome.imported)}, unchanged {len(outcome.unchanged)}, failed {len(outcome.failed)}.")
        for path, reason in outcome.failed:
            text.append("\n✗ ", style="bold")
            text.append(plain(f"{Path(path).name}: {reason}"))
        self.query_one("#import-result", Static).update(text)
        self.reload()
        # Documents change the corpus-size target, so the quality panel must recompute.
        self.app.post_message(PairsChanged([]))
        if outcome.failed:
            self.notify(f"{len(outcome.failed)} file(s) could not be imported; see the list under the path box.", severity="warning")
        else:
            self.notify(f"Imported {len(outcome.imported)} file(s).")


__all__ = ["DocumentsPane"]
