"""Mimicry warnings keep the copied runs as spans (answer and source offsets); warnings stored before spans load."""

from __future__ import annotations

import json

from engine.models import Chunk, Document, Pair, PairWarning
from engine.quality import check_pair, recheck
from engine.settings import QualitySettings
from engine.store import Store
from tui.safe_text import plain_marked

SOURCE = (
    "Tidewater keeps a job's payload for seven days. When a job fails, the worker retries it three times with "
    "exponential backoff, starting at two seconds and doubling the wait each time. Operators requeue dead jobs by hand."
)
COPIED = "the worker retries it three times with exponential backoff, starting at two seconds and doubling the wait each time"
ANSWER = f"  It does not give up at once: {COPIED}. Past that, the job waits for an operator."


def test_a_mimicry_warning_points_at_the_copied_run_in_the_answer_and_the_source() -> None:
    chunk = Chunk(id=7, document_id=1, ordinal=0, text=SOURCE, start=100, end=100 + len(SOURCE))
    (warning,) = check_pair(Pair.simple("How does the worker deal with a failing job?", ANSWER, sources=[7]),
                            [chunk], QualitySettings())
    assert warning.check == "mimicry" and warning.spans
    span = warning.spans[0]
    # Offsets into the stored response, leading spaces included, and into the chunk's text.
    assert ANSWER[span.answer_start : span.answer_end] == COPIED
    assert span.chunk_id == 7 and SOURCE[span.source_start : span.source_end] == COPIED
    assert f'"{COPIED}"' in warning.reason and f"characters {span.answer_start}-{span.answer_end}" in warning.reason
    assert f"document 1, characters {100 + span.source_start}-{100 + span.source_end}" in warning.reason


def test_spans_are_stored_and_warnings_stored_without_them_still_load(project: Store) -> None:
    project.save_document(Document(path="w.md", format="md", sha256="w", size=len(SOURCE)),
                          [Chunk(ordinal=0, text=SOURCE, start=0, end=len(SOURCE))])
    chunk_id = project.list_chunks()[0].id
    pair = project.add_pairs([Pair.simple("How does the worker deal with a failing job?", ANSWER, sources=[chunk_id])])[0]
    recheck(project)
    stored = project.get_pair(pair.id)
    assert stored.warnings[0].spans and stored.warnings[0].spans[0].chunk_id == chunk_id
    # A row written before spans existed: no "spans" key; other warnings keep no "spans": null either.
    old = [{"check": "mimicry", "severity": "warning", "reason": "The answer copies its source."}]
    with project.transaction() as conn:
        conn.execute("UPDATE pairs SET warnings = ? WHERE id = ?", (json.dumps(old), pair.id))
    assert project.get_pair(pair.id).warnings == [PairWarning(check="mimicry", reason="The answer copies its source.")]
    project.set_warnings({pair.id: [PairWarning(check="non_answer", reason="x")]})
    row = project.db.read("SELECT warnings FROM pairs WHERE id = ?", (pair.id,))[0]
    assert "spans" not in row["warnings"]


def test_marked_text_keeps_offsets_when_control_codes_are_removed() -> None:
    from rich.style import Style

    text = plain_marked("a\x1b[31mb copied c", [(6, 14)], Style(bold=True))
    assert text.plain == "ab copied c"
    assert [text.plain[s.start : s.end] for s in text.spans] == ["b copied"]


async def test_review_marks_the_copy_of_an_imported_pair_in_the_chunk_it_copies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An imported pair has no sources; the source pane shows the chunk it copies, the copied run marked in both panes."""
    from engine.models import PairKind
    from tests.test_tui import settle
    from tui.app import PairForgeApp
    from tui.panes.review import ReviewPane
    from tui.widgets.pair_detail import PairDetail
    from tui.widgets.source_view import SourceView

    root = tmp_path / "proj"
    with Store.init(root) as store:
        store.save_document(Document(path="w.md", format="md", sha256="w", size=len(SOURCE), title="Worker guide"),
                            [Chunk(ordinal=0, text=SOURCE, start=0, end=len(SOURCE))])
        pair = store.add_pairs([Pair.simple("How does the worker deal with a failing job?", ANSWER, kind=PairKind.IMPORTED)])[0]
        recheck(store)
        assert store.get_pair(pair.id).warnings[0].spans[0].chunk_id == store.list_chunks()[0].id
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.screen.query_one(ReviewPane).go_to_pair(pair.id)
        await pilot.pause()
        for pane in (app.screen.query_one(PairDetail).pane, app.screen.query_one(SourceView)):
            marked = [pane.text.plain[s.start : s.end] for s in pane.text.spans if s.style == pane.copied_style]
            assert marked == [COPIED]
