"""The review sample's verdict: stored across sessions, pass/fail apart from status, a new sample drawn on purpose and logged."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import PairForgeError
from engine.export import ExportOptions, export_dataset
from engine.models import Pair, PairKind, PairStatus
from engine.quality import LiveReport
from engine.quality.review import (
    SAMPLE_SIZE,
    current_or_new_sample,
    draw_review_sample,
    mark_review,
    review_verdict,
)
from engine.store import Store


def _fill(store: Store, n: int = 60) -> list[Pair]:
    kinds = [PairKind.INSTRUCTION, PairKind.REFUSAL, PairKind.MULTI_HOP]
    return store.add_pairs([
        Pair.simple(f"How does setting {i} change the way leases renew?", f"Setting {i} shortens each lease by {i} s.",
                    kind=kinds[i % 3], mode=["factual", "developer"][i % 2])
        for i in range(n)
    ])


def test_two_failures_are_ready_and_three_are_not(project: Store) -> None:
    _fill(project)
    sample = draw_review_sample(project, seed=4)
    assert sample.size == SAMPLE_SIZE and sample.status == "in progress"
    assert sample.message == "0 of 20 reviewed, 0 failed: 20 to go"
    ids = sample.pair_ids
    for pair_id in ids[:18]:
        mark_review(project, pair_id, "pass")
    mark_review(project, ids[18], "fail")
    partial = mark_review(project, ids[19], None)
    assert partial.message == "19 of 20 reviewed, 1 failed: 1 to go" and partial.status == "in progress"
    two = mark_review(project, ids[19], "fail")
    assert (two.reviewed, two.failed, two.status) == (20, 2, "ready")
    assert two.message == "20 of 20 reviewed, 2 failed: ready"
    three = mark_review(project, ids[0], "fail")
    assert (three.failed, three.status) == (3, "not ready")
    assert three.message == "20 of 20 reviewed, 3 failed: not ready (more than 2 failed)"
    assert three.failed_ids == sorted([ids[0], ids[18], ids[19]], key=ids.index)


def test_three_failures_are_not_ready_before_the_rest_is_read(project: Store) -> None:
    _fill(project)
    ids = draw_review_sample(project, seed=1).pair_ids
    for pair_id in ids[:3]:
        verdict = mark_review(project, pair_id, "fail")
    assert verdict.status == "not ready" and verdict.message.startswith("3 of 20 reviewed, 3 failed: not ready")


def test_the_sample_and_its_verdicts_survive_a_restart(project: Store) -> None:
    _fill(project)
    first, drawn = current_or_new_sample(project)
    assert drawn and len(first.pair_ids) == SAMPLE_SIZE
    mark_review(project, first.pair_ids[0], "fail")
    mark_review(project, first.pair_ids[1], "pass")
    root = project.root
    project.close()
    reopened = Store.open(root)
    try:
        again, drawn_again = current_or_new_sample(reopened)
        assert not drawn_again  # showing the sample never redraws it
        assert again.pair_ids == first.pair_ids and (again.reviewed, again.failed) == (2, 1)
    finally:
        reopened.close()


def test_the_verdict_is_apart_from_accept_and_reject(project: Store) -> None:
    _fill(project)
    ids = draw_review_sample(project, seed=2).pair_ids
    project.set_status(ids, PairStatus.ACCEPTED)  # accepted in bulk: not reviewed
    assert review_verdict(project).reviewed == 0
    mark_review(project, ids[0], "fail")
    project.set_status([ids[0]], PairStatus.REJECTED)  # the failed pair is rejected: still failed in its sample
    project.delete_pairs([ids[1]])
    verdict = review_verdict(project)
    assert (verdict.reviewed, verdict.failed, verdict.size) == (1, 1, SAMPLE_SIZE)


def test_a_new_sample_is_drawn_only_when_asked_and_is_logged(project: Store) -> None:
    made = _fill(project)
    project.set_status([p.id or 0 for p in made[:30]], PairStatus.REJECTED)
    first = draw_review_sample(project, seed=8)
    assert not set(first.pair_ids) & {p.id for p in made[:30]}  # rejected pairs are not sampled
    kinds = {str(p.kind) for p in project.get_pairs(first.pair_ids)}
    assert kinds == {"instruction", "refusal", "multi_hop"}
    mark_review(project, first.pair_ids[0], "fail")
    second = draw_review_sample(project, seed=9)
    assert second.sample_id != first.sample_id and second.pair_ids != first.pair_ids and second.reviewed == 0
    entries = project.log_tail(step="review")
    assert [e.action for e in entries] == ["sample", "sample"]
    assert entries[-1].count == 20 and "seed 9" in entries[-1].message
    assert "the previous one stood at 1 of 20 reviewed, 1 failed: 19 to go" in entries[-1].message
    assert entries[-1].detail["pair_ids"] == second.pair_ids and entries[-1].detail["previous_sample"] == first.sample_id


def test_marking_outside_the_sample_is_one_sentence(project: Store) -> None:
    made = _fill(project, 30)
    with pytest.raises(PairForgeError, match="No review sample drawn yet"):
        mark_review(project, made[0].id or 0, "pass")
    ids = draw_review_sample(project, seed=3).pair_ids
    outside = next(p.id for p in made if p.id not in ids)
    with pytest.raises(PairForgeError, match=f"Pair {outside} is not in the current review sample"):
        mark_review(project, outside or 0, "fail")
    with pytest.raises(PairForgeError, match="no pairs to sample"):
        project.delete_pairs([p.id or 0 for p in made])
        draw_review_sample(project)


def test_cli_sample_check_and_card_show_the_verdict(project: Store, tmp_path) -> None:
    _fill(project)
    root = str(project.root)
    runner = CliRunner()
    shown = runner.invoke(main, ["-p", root, "sample", "--json"])
    data = json.loads(shown.output)
    assert shown.exit_code == 0 and data["drawn"] and len(data["pairs"]) == 20 and data["status"] == "in progress"
    ids = data["pair_ids"]
    args = [a for i in ids[:17] for a in ("--pass", str(i))] + [a for i in ids[17:] for a in ("--fail", str(i))]
    marked = json.loads(runner.invoke(main, ["-p", root, "sample", *args, "--json"]).output)
    assert not marked["drawn"] and marked["message"] == "20 of 20 reviewed, 3 failed: not ready (more than 2 failed)"
    cleared = runner.invoke(main, ["-p", root, "sample", "--clear", str(ids[19])])
    assert "20 of 20" not in cleared.output and "19 of 20 reviewed, 2 failed: 1 to go" in cleared.output
    check = json.loads(runner.invoke(main, ["-p", root, "check", "--json"]).output)
    assert check["review"]["message"] == "19 of 20 reviewed, 2 failed: 1 to go"
    assert "Review sample: 19 of 20 reviewed, 2 failed: 1 to go" in runner.invoke(main, ["-p", root, "check"]).output
    live = LiveReport.build(project)
    assert live.snapshot(contradictions=False).review.failed == 2
    live.close()
    project.set_status(project.pair_ids(), PairStatus.ACCEPTED)
    result = export_dataset(project, tmp_path / "out", ExportOptions(formats=["messages"]))
    card = result.card_path.read_text() if result.card_path else ""
    assert "### Review sample" in card and "19 of 20 reviewed, 2 failed: 1 to go." in card
    assert f"Failed pairs: #{ids[17]}, #{ids[18]}." in card
    new = json.loads(runner.invoke(main, ["-p", root, "sample", "--new", "--seed", "5", "--json"]).output)
    assert new["drawn"] and new["reviewed"] == 0 and new["sample_id"] == data["sample_id"] + 1
