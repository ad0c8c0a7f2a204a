"""Gate benchmark: how many planted bad pairs the per-pair checks catch, and how many clean pairs they flag.

    python bench/gate_bench.py                 # dev and held-out figures, per check and overall
    python bench/gate_bench.py --misses        # also list every miss and false alarm
    python bench/gate_bench.py --sweep         # mimicry run length x copied share, on the dev split only

The labeled set is ``bench/gate_set.jsonl``, one pair a line, over the real text of ``sample_docs/``
(imported here with the project's own loaders and chunker, so sources are real chunks):

- bad pairs (``label`` "bad", ``expect`` the check that should catch them): copies of a source passage
  (whole, one copied sentence among the answer's own, about 40% copied, near-verbatim with a word
  changed, dropped, inserted or misspelt every 6-9 words; ``recipe`` says how each was made),
  non-answers in many phrasings, prompt and template leaks, instructions that are not requests,
  vacuous answers, offensive language, multi-hop answers that use one of their two sources;
- clean pairs: paraphrases of the same passages, answers quoting code blocks, inline code, paths and
  identifiers, short quoted phrases, answers naming a chapter while stating its content, non-English
  answers, multi-hop answers using both sources, refusals.

Each line carries ``split`` ("dev" or "held_out", fixed by a hash of its passage group, so a paraphrase
and the copies of the same passage never straddle it). Thresholds are chosen on dev; held-out is reported
as it falls. Caught: a bad pair carries its expected check. Flagged: a clean pair carries any warning or
error (info-level notes such as ``low_grounding`` do not count).

A second set, ``bench/gate_embedded_labels.jsonl``, holds 50 pairs the embedded default model
(SmolLM2-135M-Instruct, ``pairforge demo --pairs 50``) generated from ``sample_docs/``, each labeled
by hand as a demanding reviewer would (``label`` accept or reject, with the ``reason``). The bench
reports how often the gate agrees: of the pairs the reviewer rejects, how many it flags; of those
accepted, how many pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from engine.ingest.importer import import_paths
from engine.models import Chunk, Pair, PairKind, PairWarning, Severity
from engine.quality import check_pair
from engine.settings import QualitySettings
from engine.store import Store

ROOT = Path(__file__).resolve().parent.parent
SET_FILE = Path(__file__).resolve().parent / "gate_set.jsonl"
LABELS_FILE = Path(__file__).resolve().parent / "gate_embedded_labels.jsonl"
CAUGHT_TARGET, FALSE_ALARM_TARGET = 0.95, 0.05


@dataclass
class Case:
    """One labeled pair of the set, with its source chunks resolved."""

    id: str
    split: str
    category: str
    bad: bool
    expect: str | None
    pair: Pair
    sources: list[Chunk]


@dataclass
class Tally:
    """Caught and false-alarm counts of one split."""

    bad: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    clean: int = 0
    false_alarms: Counter[str] = field(default_factory=Counter)
    bad_total: int = 0
    bad_caught_any: int = 0
    clean_flagged: int = 0
    misses: list[str] = field(default_factory=list)


def load_cases(store: Store) -> list[Case]:
    """The labeled set, each case's sources found among the chunks of the imported sample docs."""
    names = {d.id: Path(d.path).name for d in store.list_documents()}
    chunks = store.list_chunks()
    cases: list[Case] = []
    for line in SET_FILE.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        sources: list[Chunk] = []
        for ref in row["sources"]:
            found = [c for c in chunks if names.get(c.document_id or 0) == ref["doc"] and ref["find"] in c.text]
            if not found:
                sys.exit(f"{row['id']}: no chunk of {ref['doc']} contains {ref['find']!r}; fix bench/gate_set.jsonl.")
            sources.append(found[0])
        pair = Pair.simple(
            row["instruction"], row["answer"], kind=PairKind(row["kind"]), sources=[c.id or 0 for c in sources],
        )
        cases.append(Case(row["id"], row["split"], row["category"], row["label"] == "bad", row["expect"], pair, sources))
    return cases


@dataclass
class Labeled:
    """A generated pair with a reviewer's decision, its source chunks resolved."""

    id: str
    accept: bool
    reason: str
    pair: Pair
    sources: list[Chunk]


def load_labeled(store: Store) -> list[Labeled]:
    """The hand-labeled pairs of the embedded model, each source found as the chunk whose text starts with ``find``."""
    names = {d.id: Path(d.path).name for d in store.list_documents()}
    chunks = store.list_chunks()
    labeled: list[Labeled] = []
    for line in LABELS_FILE.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        sources: list[Chunk] = []
        for ref in row["sources"]:
            found = [c for c in chunks if names.get(c.document_id or 0) == ref["doc"] and c.text.strip().startswith(ref["find"])]
            if not found:
                sys.exit(f"{row['id']}: no chunk of {ref['doc']} starts with {ref['find']!r}; fix {LABELS_FILE.name}.")
            sources.append(found[0])
        pair = Pair.simple(
            row["instruction"], row["answer"], kind=PairKind(row["kind"]), mode=row["mode"],
            sources=[c.id or 0 for c in sources],
        )
        labeled.append(Labeled(row["id"], row["label"] == "accept", row["reason"], pair, sources))
    return labeled


def agreement(labeled: list[Labeled], settings: QualitySettings, misses: bool) -> None:
    """How often the gate agrees with the reviewer: rejected pairs it flags, accepted pairs it passes."""
    rejected = [c for c in labeled if not c.accept]
    accepted = [c for c in labeled if c.accept]
    flagged_by: Counter[str] = Counter()
    caught = passed = 0
    notes: list[str] = []
    for case in labeled:
        flagged = _serious(check_pair(case.pair, case.sources, settings))
        if case.accept:
            passed += not flagged
            if flagged:
                notes.append(f"FLAGGED {case.id} (accepted: {case.reason}) by {sorted(flagged)}")
        else:
            caught += bool(flagged)
            flagged_by.update(flagged)
            if not flagged:
                notes.append(f"PASSED  {case.id} (rejected: {case.reason})")
    agree = caught + passed
    print(
        f"embedded model, {len(labeled)} hand-labeled pairs ({len(rejected)} rejected, {len(accepted)} accepted): "
        f"gate flags {_rate(caught, len(rejected))} of the rejected, passes {_rate(passed, len(accepted))} of the "
        f"accepted; agrees on {_rate(agree, len(labeled))}"
    )
    print("checks flagging the rejected pairs: " + ", ".join(f"{c} {n}" for c, n in flagged_by.most_common()))
    if misses:
        print("\n".join(notes))


def _serious(warnings: list[PairWarning]) -> set[str]:
    return {w.check for w in warnings if w.severity is not Severity.INFO}


def evaluate(cases: list[Case], settings: QualitySettings) -> dict[str, Tally]:
    """Run the checks over every case; tallies per split ("dev", "held_out", "all")."""
    tallies = {name: Tally() for name in ("dev", "held_out", "all")}
    for case in cases:
        warnings = check_pair(case.pair, case.sources, settings)
        flagged = _serious(warnings)
        for tally in (tallies[case.split], tallies["all"]):
            if case.bad:
                assert case.expect is not None
                tally.bad[case.expect] += 1
                tally.bad_total += 1
                tally.bad_caught_any += bool(flagged)
                if case.expect in flagged:
                    tally.caught[case.expect] += 1
                elif tally is tallies["all"]:
                    tally.misses.append(f"MISS  {case.id} ({case.split}) expected {case.expect}, got {sorted(flagged) or 'nothing'}")
            else:
                tally.clean += 1
                tally.clean_flagged += bool(flagged)
                tally.false_alarms.update(flagged)
                if flagged and tally is tallies["all"]:
                    reasons = "; ".join(f"{w.check}: {w.reason}" for w in warnings if w.check in flagged)
                    tally.misses.append(f"FALSE {case.id} ({case.split}) {reasons}")
    return tallies


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:6.1%} ({part}/{whole})" if whole else "     -"


def print_tallies(tallies: dict[str, Tally]) -> None:
    """Caught and false-alarm rates per check and overall, for each split."""
    checks = sorted({c for t in tallies.values() for c in (*t.bad, *t.false_alarms)})
    print(f"{'check':<22} {'caught dev':>18} {'caught held-out':>18} {'false alarms dev':>18} {'false alarms held-out':>22}")
    dev, held = tallies["dev"], tallies["held_out"]
    for check in checks:
        print(
            f"{check:<22} {_rate(dev.caught[check], dev.bad[check]):>18} {_rate(held.caught[check], held.bad[check]):>18}"
            f" {_rate(dev.false_alarms[check], dev.clean):>18} {_rate(held.false_alarms[check], held.clean):>22}"
        )
    for name in ("dev", "held_out", "all"):
        t = tallies[name]
        caught, flagged = t.bad_caught_any / max(1, t.bad_total), t.clean_flagged / max(1, t.clean)
        expected = sum(t.caught.values()) / max(1, t.bad_total)
        verdict = "meets" if caught >= CAUGHT_TARGET and flagged <= FALSE_ALARM_TARGET else "MISSES"
        print(
            f"overall {name:<9} caught {_rate(t.bad_caught_any, t.bad_total)} (by the expected check {expected:.1%}), "
            f"clean flagged {_rate(t.clean_flagged, t.clean)}: {verdict} the targets (>= 95% caught, <= 5% flagged)"
        )


def sweep(cases: list[Case], base: QualitySettings) -> None:
    """Mimicry run length and copied share against caught / flagged, on the dev split only."""
    dev = [c for c in cases if c.split == "dev"]
    copies = [c for c in dev if c.expect == "mimicry"]
    clean = [c for c in dev if not c.bad]
    print(f"dev: {len(copies)} planted copies, {len(clean)} clean pairs")
    print(f"{'run words':>9} {'share':>6} {'copies caught':>14} {'clean flagged by mimicry':>25}")
    for run in (8, 10, 12, 15, 20):
        for share in (0.3, 0.4, 0.5, 0.6):
            settings = base.model_copy(update={"mimicry_min_run_words": run, "mimicry_threshold": share})
            caught = sum("mimicry" in _serious(check_pair(c.pair, c.sources, settings)) for c in copies)
            flagged = sum("mimicry" in _serious(check_pair(c.pair, c.sources, settings)) for c in clean)
            print(f"{run:>9} {share:>6.0%} {_rate(caught, len(copies)):>14} {_rate(flagged, len(clean)):>25}")


def per_pair_cost(cases: list[Case], settings: QualitySettings, rounds: int = 5) -> tuple[float, float]:
    """Median and worst-case microseconds of ``check_pair`` per pair over the set (classifier loaded first)."""
    check_pair(cases[0].pair, cases[0].sources, settings)
    samples: list[float] = []
    for _ in range(rounds):
        for case in cases:
            start = time.perf_counter()
            check_pair(case.pair, case.sources, settings)
            samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--misses", action="store_true", help="list every miss and false alarm")
    parser.add_argument("--sweep", action="store_true", help="sweep the mimicry settings on the dev split")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.init(Path(tmp) / "gate")
        import_paths(store, [ROOT / "sample_docs"])
        cases = load_cases(store)
        labeled = load_labeled(store)
        settings = store.settings.quality
        store.close()
    counts = Counter((c.split, "bad" if c.bad else "clean") for c in cases)
    print(
        f"gate set: {len(cases)} pairs over sample_docs; dev {counts['dev', 'bad']} bad + {counts['dev', 'clean']} clean, "
        f"held-out {counts['held_out', 'bad']} bad + {counts['held_out', 'clean']} clean; "
        f"mimicry_min_run_words {settings.mimicry_min_run_words}, mimicry_threshold {settings.mimicry_threshold:g}, "
        f"offensive_threshold {settings.offensive_threshold:g}"
    )
    if args.sweep:
        sweep(cases, settings)
        return
    tallies = evaluate(cases, settings)
    print_tallies(tallies)
    by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        flagged = _serious(check_pair(case.pair, case.sources, settings))
        hit = (case.expect in flagged) if case.bad else not flagged
        by_category[case.category][0] += hit
        by_category[case.category][1] += 1
    print("per category (bad: caught by the expected check; clean: not flagged): " + ", ".join(
        f"{name} {ok}/{n}" for name, (ok, n) in sorted(by_category.items())
    ))
    agreement(labeled, settings, args.misses)
    median, worst = per_pair_cost(cases, settings)
    print(f"check_pair cost per pair: median {median:.0f} us, max {worst:.0f} us (every check, one process)")
    if args.misses:
        print("\n".join(tallies["all"].misses))


if __name__ == "__main__":
    main()
