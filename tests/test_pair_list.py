"""The review list's row cache: recently shown rows stay, the oldest go first, memory stays bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult

from engine.store import Store
from tests.test_tui_projects import build_review_project
from tui.widgets.pair_list import PairList, RowCache


def _row(pair_id: int) -> dict[str, Any]:
    return {"id": pair_id}


def test_row_cache_drops_the_least_recently_used_row_first() -> None:
    cache = RowCache(capacity=3)
    cache.put_many([_row(1), _row(2), _row(3)])
    assert cache.get(1) == _row(1)  # 1 is now the most recently used
    cache.put_many([_row(4)])
    assert len(cache) == 3 and 2 not in cache and all(i in cache for i in (1, 3, 4))
    cache.forget(3)
    assert 3 not in cache and cache.get(3) is None
    cache.clear()
    assert len(cache) == 0


class _ListApp(App[None]):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        yield PairList(self.store, id="pairs", cache_size=120)


async def test_scrolling_back_after_many_pages_needs_no_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = build_review_project(tmp_path / "proj", pairs=400)
    with Store.open(root) as store:
        app = _ListApp(store)
        async with app.run_test(size=(80, 20)) as pilot:
            pairs = app.query_one(PairList)
            pairs.load()
            await pilot.pause()
            # Page down through more rows than the cache holds.
            while pairs.cursor < len(pairs.ids) - 1:
                pairs.move_to(pairs.cursor + pairs.page_size)
                await pilot.pause()
            assert len(pairs._rows) <= 120
            queried: list[int] = []
            real_rows = store.pair_rows
            monkeypatch.setattr(store, "pair_rows", lambda ids: queried.extend(ids) or real_rows(ids))
            for _ in range(5):  # beyond the last window the list fetched
                pairs.move_to(pairs.cursor - pairs.page_size)
                await pilot.pause()
            assert queried == []
            drawn = "".join(pairs.render_line(y).text for y in range(pairs.size.height))
            assert f"{pairs.current_id:>6}" in drawn
