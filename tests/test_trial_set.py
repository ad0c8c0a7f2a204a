"""The trial subset: stratified, proportional, grouped by near-duplicate cluster, inside the split,
deterministic, exported through the one exporter with a card that says so."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import ExportError
from engine.export import ExportOptions, draw_trial_set, export_trial_set
from engine.models import Pair, PairStatus
from engine.quality.dedup import NearDuplicateIndex
from engine.store import Store
from tests.trial_support import build_diverse_project


@pytest.fixture
def diverse(project: Store) -> tuple[Store, list[Pair]]:
    return project, build_diverse_project(project)


def _accepted(store: Store) -> list[Pair]:
    return [p for p in store.iter_pairs() if p.status is PairStatus.ACCEPTED]


def _document(store: Store, pair: Pair) -> str:
    names = {d.id: d.path for d in store.list_documents()}
    chunk_document = {c.id: names[c.document_id] for c in store.list_chunks(include_retired=True)}
    found = sorted({chunk_document[c] for c in pair.sources})
    return found[0] if found else "(none)"


def test_trial_keeps_kinds_splits_and_documents_in_proportion(diverse):
    store, _ = diverse
    accepted = _accepted(store)
    size = 100
    draw = draw_trial_set(store, size)
    assert draw.drawn == size and draw.eligible == len(accepted)
    drawn = [p for p in accepted if p.id in draw.pair_ids]
    ratio = size / len(accepted)
    # Refusals and multi-hop pairs, the kinds a small sample loses first, and the split stay within
    # a pair and a half of their share; modes and documents within two.
    for attribute, slack in (("kind", 1.5), ("split", 1.5), ("mode", 2)):
        full = Counter(str(getattr(p, attribute)) for p in accepted)
        trial = Counter(str(getattr(p, attribute)) for p in drawn)
        for value, n in full.items():
            assert abs(trial[value] - n * ratio) <= slack, (attribute, value, trial[value], n * ratio)
    documents_full = Counter(_document(store, p) for p in accepted)
    documents_trial = Counter(_document(store, p) for p in drawn)
    for document, n in documents_full.items():
        assert abs(documents_trial[document] - n * ratio) <= 2, document


def test_a_large_cluster_does_not_pull_the_shares_off(project: Store):
    build_diverse_project(project, n=300, clusters=10, big_cluster=25)
    accepted = _accepted(project)
    ratio = 120 / len(accepted)
    for seed in range(5):
        draw = draw_trial_set(project, 120, seed=seed)
        assert draw.drawn == 120
        drawn = [p for p in accepted if p.id in draw.pair_ids]
        for attribute in ("kind", "split"):
            full = Counter(str(getattr(p, attribute)) for p in accepted)
            trial = Counter(str(getattr(p, attribute)) for p in drawn)
            for value, n in full.items():
                assert abs(trial[value] - n * ratio) <= 2, (seed, attribute, value, trial[value], n * ratio)


def test_trial_parts_come_from_their_split_and_clusters_are_whole(diverse):
    store, _ = diverse
    accepted = _accepted(store)
    index = NearDuplicateIndex.from_pairs(accepted, store.settings.quality.near_duplicate_threshold)
    clusters = index.clusters()
    assert len(clusters) >= 6
    split_of = {p.id: p.split for p in accepted}
    whole = 0
    for seed in range(8):
        draw = draw_trial_set(store, 150, seed=seed)
        assert draw.drawn == 150
        for cluster in clusters:
            inside = [i for i in cluster if i in draw.pair_ids]
            assert len(inside) in (0, len(cluster)), (seed, cluster)
            whole += bool(inside)
            assert len({split_of[i] for i in cluster}) == 1
        assert draw.trial_splits == dict(sorted(Counter(split_of[i] for i in draw.pair_ids).items()))
    assert whole > 0  # some draws did take clusters, and took them whole


def test_trial_is_deterministic_for_a_seed(diverse):
    store, _ = diverse
    first = draw_trial_set(store, 80, seed=3)
    again = draw_trial_set(store, 80, seed=3)
    other = draw_trial_set(store, 80, seed=4)
    assert first.pair_ids == again.pair_ids
    assert first.pair_ids != other.pair_ids
    assert draw_trial_set(store, 80).seed == store.settings.split.seed


def test_cluster_straddling_the_stored_split_is_never_drawn(diverse):
    store, _ = diverse
    accepted = _accepted(store)
    cluster = NearDuplicateIndex.from_pairs(accepted).clusters()[0]
    side = {p.id: p.split for p in accepted}[cluster[0]]
    store.set_splits({cluster[1]: "validation" if side == "train" else "train"})
    draw = draw_trial_set(store, len(accepted))
    assert draw.straddling == len(cluster)
    assert not set(cluster) & draw.pair_ids
    assert "run `pairforge split`" in draw.method()


def test_size_over_the_exportable_pairs_takes_them_all_and_says_so(diverse):
    store, _ = diverse
    draw = draw_trial_set(store, 10_000)
    assert draw.drawn == len(_accepted(store))
    assert any("only" in note for note in draw.notes)
    with pytest.raises(ExportError, match="--size"):
        draw_trial_set(store, 0)


def test_filters_of_the_export_apply_to_the_draw(diverse):
    store, _ = diverse
    draw = draw_trial_set(store, 20, ExportOptions(kinds=["refusal"]))
    kinds = {p.kind for p in store.get_pairs(sorted(draw.pair_ids))}
    assert kinds == {"refusal"} and draw.drawn == 20


def test_trial_export_writes_the_drawn_pairs_with_a_card_saying_how(diverse, tmp_path: Path):
    store, _ = diverse
    out = tmp_path / "trial"
    result = export_trial_set(store, out, 60, ExportOptions(formats=["messages", "alpaca"]), seed=5)
    draw = result.trial
    assert draw is not None and result.exported == 60
    rows = {f"{f.format}/{f.split}": f.rows for f in result.files}
    assert rows["messages/train"] + rows["messages/validation"] == 60
    assert rows["messages/validation"] == draw.trial_splits.get("validation", 0) > 0
    drawn = {p.id: p for p in store.get_pairs(sorted(draw.pair_ids))}
    exported_questions = [json.loads(line)["messages"][0]["content"]
                          for line in (out / "messages" / "validation.jsonl").read_text().splitlines()]
    validation_questions = {p.instruction for p in drawn.values() if p.split == "validation"}
    assert set(exported_questions) == validation_questions
    card = (out / "README.md").read_text()
    assert "(trial subset)" in card and "## Trial subset" in card and "- trial-subset" in card
    assert "seed 5" in card and "systematic sample" in card
    assert result.skipped["not drawn into the trial subset"] == draw.eligible - 60
    assert store.log_tail(1, step="export")[0].action == "trial"
    assert (out / "train_trl.py").is_file() and (out / "dataset_info.json").is_file()


def test_trial_set_command(diverse, tmp_path: Path):
    store, _ = diverse
    out = tmp_path / "t"
    runner = CliRunner()
    args = ["-p", str(store.root), "trial-set", "--size", "40", "--seed", "9", str(out)]
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["exported"] == 40 and data["trial"]["seed"] == 9 and data["trial"]["drawn"] == 40
    assert any(p.endswith("train_trl.py") for p in data["recipes"])
    again = runner.invoke(main, args)
    assert again.exit_code != 0 and "--force" in again.output
    table = runner.invoke(main, [*args, "--force"])
    assert table.exit_code == 0 and "a trial subset of 40" in table.output
    empty = runner.invoke(main, ["-p", str(store.root), "trial-set", "--size", "0", str(tmp_path / "z")])
    assert empty.exit_code != 0 and "Traceback" not in empty.output and "--size" in empty.output


async def test_export_section_exports_a_trial_subset(tmp_path: Path) -> None:
    """From the app: a size in the Export section's trial box exports a trial subset."""
    from textual.widgets import Input, Static

    from tests.test_tui import settle
    from tests.test_tui_flows import wait_until
    from tui.app import PairForgeApp

    root = tmp_path / "proj"
    store = Store.init(root)
    build_diverse_project(store, n=120, clusters=2)
    store.close()
    out = tmp_path / "trial"
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("f5")
        app.screen.query_one("#exp-out", Input).value = str(out)
        app.screen.query_one("#exp-trial", Input).value = "30"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: "Wrote" in str(app.screen.query_one("#exp-summary").render()), 30)
        summary = str(app.screen.query_one("#exp-summary").render())
        assert "trial subset of 30 pair(s)" in summary and "train_trl.py" in summary
        assert "## Trial subset" in str(app.screen.query_one("#exp-card", Static).render())
    rows = sum(len((out / "messages" / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "validation"))
    assert rows == 30
