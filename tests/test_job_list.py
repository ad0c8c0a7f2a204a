"""The Generate screen's job list: a window over the store that redraws only changed jobs."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from engine.models import Job, Pair, PairKind
from engine.store import Store
from tests.test_tui import settle
from tui.app import PairForgeApp
from tui.messages import GenerationUpdate
from tui.panes.generate import GeneratePane
from tui.widgets.job_list import JobList


def _project(root: Path, jobs: int) -> None:
    store = Store.init(root)
    store.create_run("generate", {}, [
        Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[1]) for _ in range(jobs)
    ])
    store.close()


async def _open_generate(app: PairForgeApp, pilot: Pilot[None]) -> None:
    await settle(app, pilot)
    await pilot.press("f3")
    await settle(app, pilot)


def _line(job_list: JobList, y: int) -> str:
    return "".join(segment.text for segment in job_list.render_line(y))


async def test_progress_redraws_the_changed_jobs_without_reading_every_job(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _project(root, 3000)
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_generate(app, pilot)
        pane = app.screen.query_one(GeneratePane)
        job_list = pane.query_one(JobList)
        assert len(job_list.ids) == 3000
        assert "job" in _line(job_list, 0) and "status" in _line(job_list, 0)
        first = _line(job_list, 1)
        assert "queued" in first and "instruction" in first
        store = app.store
        assert store is not None
        reads: list[int] = []
        original = store.job_ids
        store.job_ids = lambda *task: reads.append(1) or original(*task)  # type: ignore[method-assign]
        job = store.claim_job("http://h:11434", task="generate")
        assert job is not None and job.id == job_list.ids[0]
        store.complete_job(job.id or 0, [Pair.simple("A question of the first job?", "Its answer, long enough.")])
        pane.post_message(GenerationUpdate({**store.job_counts(), "pairs": 1}, [job.id or 0]))
        await settle(app, pilot)
        assert "done" in _line(job_list, 1)
        assert reads == []  # a progress update never re-reads the 3,000 jobs
        # The list is a window: moving far down fetches only the rows it shows.
        job_list.focus()
        await pilot.press("end")
        assert job_list.cursor == 2999
        assert "queued" in _line(job_list, job_list.size.height - 1)


async def test_opening_a_run_shows_where_it_is_working(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _project(root, 500)
    with Store.open(root) as store:
        for _ in range(300):
            job = store.claim_job("http://h:11434", task="generate")
            assert job is not None
            store.complete_job(job.id or 0, [Pair.simple(f"Question {job.id}?", "An answer of some length.")])
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_generate(app, pilot)
        job_list = app.screen.query_one(JobList)
        assert job_list.cursor == 300  # the first job not yet done
        shown = [_line(job_list, y) for y in range(1, job_list.size.height)]
        assert any("queued" in line for line in shown)


async def test_the_generate_section_lists_only_generation_jobs(tmp_path: Path) -> None:
    """Judge and eval runs queue jobs in the same table: the Generate section shows and counts its own."""
    root = tmp_path / "proj"
    _project(root, 5)
    with Store.open(root) as store:
        store.create_run("eval", {}, [
            Job(task="eval", kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[1]) for _ in range(7)
        ])
        judge_run, _ = store.create_run("judge", {}, [Job(task="judge", kind=PairKind.INSTRUCTION, mode="factual", pair_id=1)])
        (judge_job,) = store.list_jobs(run_id=judge_run)
        # The first job still running anywhere is the judge's; the list must not move to it.
        assert store.claim_job("http://h:11434", task="judge") is not None
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await _open_generate(app, pilot)
        job_list = app.screen.query_one(JobList)
        assert len(job_list.ids) == 5 and judge_job.id not in job_list.ids
        assert job_list.cursor == 0  # the first queued generation job
        stats = str(app.screen.query_one("#gen-stats").render())
        assert "queued 5" in stats and "running" not in stats
