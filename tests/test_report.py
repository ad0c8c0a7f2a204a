"""The live dataset report: planted flaws of the sample dataset, incremental equals rebuild, CLI."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from engine.cli import main
from engine.ingest.importer import import_paths
from engine.models import Message, Pair, PairKind, PairStatus, Role
from engine.quality import LiveReport, recheck, round_up_seq_length
from engine.store import PairFilter

FLAW_CHECKS = {
    "ai_disclaimer": "ai_disclaimer",
    "too_short": "too_short_response",
    "document_says": "document_says",
    "verbatim_copy": "mimicry",
    "pii": "pii_email",
    "sycophantic_opener": "sycophantic_opener",
}


def test_report_flags_planted_flaws_of_the_sample_dataset(project, sample_docs) -> None:
    import_paths(project, [sample_docs])
    recheck(project)
    flaws = json.loads((sample_docs / ".flaws.json").read_text())
    pairs = list(project.iter_pairs())
    by_line = {p.origin.source_line: p for p in pairs if p.origin.source_file and p.origin.source_file.endswith("legacy-dataset.jsonl")}
    live = LiveReport.build(project)
    report = live.snapshot()
    live.close()
    duplicate_ids = {i for cluster in report.duplicate_clusters for i in cluster}
    for flaw in flaws:
        pair = by_line[flaw["line"]]
        if flaw["flaw"] in ("exact_duplicate", "near_duplicate"):
            assert pair.id in duplicate_ids, flaw
        else:
            assert FLAW_CHECKS[flaw["flaw"]] in {w.check for w in pair.warnings}, flaw
    assert report.missing and {t.name for t in report.thresholds if t.status == "missing"} >= {"pairs", "refusals", "multi_hop"}
    assert report.warning_counts["document_says"] == 1
    assert len(report.documents) >= 10


def _random_pair(rng: random.Random) -> Pair:
    kind = rng.choice([PairKind.INSTRUCTION, PairKind.REFUSAL, PairKind.MULTI_HOP])
    body = " ".join(rng.choice(["retry", "job", "queue", "worker", "lease", "cache", "token"]) for _ in range(rng.randint(5, 200)))
    response = ("- " + body.replace(" job ", "\n- job ")) if rng.random() < 0.3 else body
    messages = [Message(role=Role.USER, content=f"Question {rng.random():.6f} about {body[:30]}?"), Message(role=Role.ASSISTANT, content=response)]
    if rng.random() < 0.2:
        messages.insert(0, Message(role=Role.SYSTEM, content="You are the Tidewater assistant."))
    return Pair(messages=messages, kind=kind, mode=rng.choice(["factual", "developer", "thinker"]))


def _comparable(report) -> dict:
    return report.model_dump(mode="json", exclude={"generated_at", "contradictions", "duplicate_clusters"})


def test_incremental_report_equals_full_rebuild(project) -> None:
    rng = random.Random(11)
    project.add_pairs([_random_pair(rng) for _ in range(40)])
    live = LiveReport.build(project)
    for _ in range(120):
        ids = project.pair_ids()
        action = rng.random()
        if action < 0.4 or not ids:
            project.add_pairs([_random_pair(rng)])
        elif action < 0.6:
            project.delete_pairs([rng.choice(ids)])
        elif action < 0.75:
            project.set_status([rng.choice(ids)], rng.choice(list(PairStatus)))
        elif action < 0.9:
            pair = project.get_pair(rng.choice(ids))
            project.update_pair(_random_pair(rng).model_copy(update={"id": pair.id}))
        else:
            recheck(project, [rng.choice(ids)])
    project.undo()  # undo notifies too: the report must follow it
    incremental = live.snapshot(contradictions=False)
    live.close()
    rebuilt = LiveReport.build(project)
    assert _comparable(incremental) == _comparable(rebuilt.snapshot(contradictions=False))
    rebuilt.close()
    assert incremental.tokens.count == project.count_pairs() - project.count_pairs(PairFilter(status="rejected"))


def test_changes_written_while_the_report_builds_are_counted(project, monkeypatch) -> None:
    """Pairs added, edited and deleted while the build is reading are all reflected.

    The store's bulk reader is wrapped (not replaced) so the writes land at a fixed point
    mid-read, as a generation thread's would; the store and its notifications are real.
    """
    rng = random.Random(5)
    project.add_pairs([_random_pair(rng) for _ in range(30)])
    ids = project.pair_ids()
    read_rows = project.iter_pair_rows

    def rows_with_writes_midway(*args, **kwargs):  # type: ignore[no-untyped-def]
        for n, row in enumerate(read_rows(*args, **kwargs)):
            if n == 10:
                project.add_pairs([_random_pair(rng).model_copy(update={"kind": PairKind.REFUSAL}) for _ in range(3)])
                project.delete_pairs([ids[2]])  # already read
                project.set_status([ids[25]], PairStatus.REJECTED)  # not read yet
                project.set_status([ids[3]], PairStatus.REJECTED)  # already read
            yield row

    monkeypatch.setattr(project, "iter_pair_rows", rows_with_writes_midway)
    live = LiveReport.build(project)
    monkeypatch.undo()
    during = live.snapshot(contradictions=False)
    live.close()
    rebuilt = LiveReport.build(project)
    assert _comparable(during) == _comparable(rebuilt.snapshot(contradictions=False))
    rebuilt.close()


def test_review_sample_is_stratified_and_seeded(project) -> None:
    rng = random.Random(5)
    project.add_pairs([_random_pair(rng) for _ in range(200)])
    live = LiveReport.build(project)
    sample = live.review_sample(20, seed=1)
    assert len(sample) == 20 and sample == live.review_sample(20, seed=1)
    kinds = {p.kind for p in project.get_pairs(sample)}
    assert kinds == {PairKind.INSTRUCTION, PairKind.REFUSAL, PairKind.MULTI_HOP}
    live.close()


def test_contradictions_and_consistency(project) -> None:
    project.add_pairs([
        Pair.simple("How many attempts does a job get by default?", "Five attempts, then the dead-letter queue takes it."),
        Pair.simple("How many attempts does a job get by default ?", "Unlimited: Tidewater never gives up on a job."),
        Pair.simple("Which port is the default?", "7420 on loopback, configurable with server.listen.", system="Be brief."),
    ])
    live = LiveReport.build(project)
    report = live.snapshot()
    live.close()
    assert len(report.contradictions) == 1
    assert any("system prompt" in note for note in report.consistency_warnings)


def test_a_contradiction_deep_inside_a_large_group_is_found(project) -> None:
    """Thirty near-identical questions form one group; the one answered differently is its last member."""
    same = "Tidewater retries a failed job three times, waiting longer each time before trying again."
    project.add_pairs([Pair.simple(f"How does Tidewater handle case {i} of retries?", same) for i in range(30)])
    twin = project.add_pairs([Pair.simple("How does Tidewater handle case 29 of retries?", "It never retries: failed jobs go straight to the dead-letter table.")])[0]
    live = LiveReport.build(project)
    cross = live.cross_checks()
    live.close()
    assert len(cross.clusters) == 1 and len(cross.clusters[0]) == 31
    found = [c.pair_ids for c in cross.contradictions]
    assert (twin.id - 1, twin.id) in found
    assert all(twin.id in pair for pair in found)  # the thirty that agree never contradict each other


def test_round_up_seq_length() -> None:
    assert round_up_seq_length(100) == 128
    assert round_up_seq_length(300) == 512
    assert round_up_seq_length(700) == 768
    assert round_up_seq_length(1024) == 1024


def test_cli_commands(project, sample_docs) -> None:
    import_paths(project, [sample_docs / "legacy-dataset.jsonl"])
    root = str(project.root)
    runner = CliRunner()
    check = runner.invoke(main, ["-p", root, "check", "--json"])
    assert check.exit_code == 1, check.output
    data = json.loads(check.output)
    assert data["missing"] and data["warning_counts"]["ai_disclaimer"] == 1
    text = runner.invoke(main, ["-p", root, "check"])
    assert text.exit_code == 1 and "Some targets are missing" in text.output
    dry = runner.invoke(main, ["-p", root, "dedup", "--json"])
    assert dry.exit_code == 0 and len(json.loads(dry.output)["removed"]) == 2
    similar = runner.invoke(main, ["-p", root, "similar", str(json.loads(dry.output)["removed"][0]), "--json"])
    assert similar.exit_code == 0 and json.loads(similar.output)
    redact = runner.invoke(main, ["-p", root, "redact", "--apply", "--json"])
    assert json.loads(redact.output) == {"pairs": 1, "applied": True}
    split = runner.invoke(main, ["-p", root, "split", "--seed", "3", "--json"])
    assert split.exit_code == 0 and json.loads(split.output)["train"] > 0
    missing = runner.invoke(main, ["-p", root, "similar", "99999"])
    assert missing.exit_code == 1 and "No pair with id 99999" in missing.output


def test_build_pauses_between_batches_of_pairs(project) -> None:
    """The build (and the later index build) call ``pause`` regularly: where the app waits while its user types."""
    from engine.quality.report import BUILD_PAUSE_EVERY

    rng = random.Random(3)
    project.add_pairs([_random_pair(rng) for _ in range(BUILD_PAUSE_EVERY * 2 + 5)])
    calls: list[int] = []
    paused = LiveReport.build(project, pause=lambda: calls.append(len(calls)))
    assert len(calls) == 3
    paused.cross_checks()  # its index build pauses too, every 200 pairs
    assert len(calls) == 3 + 2
    assert paused._index is not None and paused._index.workers == 1  # an interactive caller keeps a core
    plain = LiveReport.build(project)
    assert _comparable(paused.snapshot(contradictions=False)) == _comparable(plain.snapshot(contradictions=False))
    paused.close()
    plain.close()
