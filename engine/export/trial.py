"""The trial subset: a small, stratified sample of the exportable pairs to train on before scaling up.

Near-duplicate clusters (and lone pairs) are the units drawn: a cluster is in the trial set whole or
not at all, so near duplicates never sit on both sides of the trial's train and validation parts or
of the trial boundary. The units are ordered by split, kind, mode and source document, shuffled within
each of those strata, and sampled systematically, so every level of that order keeps its share of
the full set; then whole units are swapped while that brings the split, kind, mode and document
counts closer to their shares (a large cluster is a lump a plain sample cannot split). Refusals and
multi-hop pairs stay in proportion, and the validation part comes from the validation split only.
The draw is the same for the same seed and data.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ExportError
from engine.export.options import SPLITS, ExportOptions, ExportProgress, ExportResult
from engine.models import Pair, Role
from engine.store import PairFilter, Store

DEFAULT_TRIAL_SIZE = 300
_NO_DOCUMENT = "(none)"

# A stratum: (split, kind, mode, source document).
Stratum = tuple[str, str, str, str]


@dataclass(frozen=True)
class TrialDraw:
    """Which pairs a trial subset holds and how they were drawn (for the card and the result)."""

    size: int
    seed: int
    pair_ids: frozenset[int]
    eligible: int
    strata: int
    clusters: int  # near-duplicate clusters inside the trial set, each taken whole
    clustered_pairs: int
    straddling: int  # pairs of clusters that straddle the stored split, never drawn
    full_kinds: dict[str, int] = field(default_factory=dict)
    trial_kinds: dict[str, int] = field(default_factory=dict)
    full_splits: dict[str, int] = field(default_factory=dict)
    trial_splits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def drawn(self) -> int:
        """How many pairs were drawn."""
        return len(self.pair_ids)

    def method(self) -> str:
        """One paragraph saying how the subset was drawn."""
        text = (
            f"Drawn with seed {self.seed}: a systematic sample of {self.drawn} of the {self.eligible} exportable "
            f"pair(s), ordered by split, kind, mode and source document ({self.strata} strata, shuffled within "
            "each), then balanced so each kind, mode, document and split keeps its share of the full set. The "
            "validation part comes from the validation split and the train part from the train split; near-duplicate clusters "
            f"are taken whole or not at all ({self.clusters} cluster(s), {self.clustered_pairs} pair(s) in this subset)."
        )
        if self.straddling:
            text += (f" {self.straddling} pair(s) in clusters with members on both sides of the stored split were "
                     "never drawn; run `pairforge split` to place them.")
        return text

    def to_json(self) -> dict[str, Any]:
        """The draw as plain JSON-ready data."""
        return {
            "size": self.size, "seed": self.seed, "drawn": self.drawn, "eligible": self.eligible,
            "strata": self.strata, "clusters": self.clusters, "clustered_pairs": self.clustered_pairs,
            "straddling": self.straddling, "kinds": {"full": self.full_kinds, "trial": self.trial_kinds},
            "splits": {"full": self.full_splits, "trial": self.trial_splits},
        }


@dataclass
class _Unit:
    """A near-duplicate cluster (or a lone pair): drawn whole or not at all."""

    ids: list[int]
    stratum: Stratum


def _answered(pair: Pair) -> bool:
    """Whether some user turn is answered by a later assistant turn (what makes a pair exportable)."""
    asked = False
    for message in pair.messages:
        if message.role is Role.USER:
            asked = True
        elif message.role is Role.ASSISTANT and asked:
            return True
    return False


def _eligible_pairs(store: Store, options: ExportOptions) -> list[Pair]:
    """The pairs an export with ``options`` writes: its statuses, kinds and modes, no excluded
    severity, and a user turn answered by an assistant turn."""
    kinds = {k.value for k in options.kinds}
    modes = set(options.modes)
    excluded = {s.value for s in options.exclude_severities}
    out: list[Pair] = []
    for status in options.statuses:
        for pair in store.iter_pairs(PairFilter(status=status.value)):
            if (kinds and str(pair.kind) not in kinds) or (modes and pair.mode not in modes):
                continue
            if excluded and any(str(w.severity) in excluded for w in pair.warnings):
                continue
            if not _answered(pair):
                continue
            out.append(pair)
    return sorted(out, key=lambda p: p.id or 0)


def _strata(store: Store, pairs: Sequence[Pair]) -> dict[int, Stratum]:
    documents = {d.id: d.path for d in store.list_documents() if d.id is not None}
    chunk_document = {c.id: documents.get(c.document_id or 0, f"document {c.document_id}")
                      for c in store.list_chunks(include_retired=True) if c.id is not None}
    out: dict[int, Stratum] = {}
    for pair in pairs:
        names = sorted({chunk_document[c] for c in pair.sources if c in chunk_document})
        if not names and pair.origin.source_file:
            names = [pair.origin.source_file]
        split = pair.split if pair.split in SPLITS else "train"
        out[pair.id or 0] = (split, str(pair.kind), pair.mode, names[0] if names else _NO_DOCUMENT)
    return out


def _units(store: Store, pairs: Sequence[Pair], strata: dict[int, Stratum]) -> tuple[list[_Unit], int]:
    """The drawable units and how many pairs sit in clusters straddling the stored split."""
    from engine.quality.dedup import NearDuplicateIndex

    index = NearDuplicateIndex(store.settings.quality.near_duplicate_threshold)
    index.workers = 1
    for pair in pairs:
        index.add(pair)
    clustered: set[int] = set()
    units: list[_Unit] = []
    straddling = 0
    for cluster in index.clusters():
        clustered.update(cluster)
        if len({strata[i][0] for i in cluster}) > 1:
            straddling += len(cluster)
            continue
        counts = Counter(strata[i] for i in cluster)
        units.append(_Unit(list(cluster), min(counts, key=lambda s: (-counts[s], s))))
    units += [_Unit([p.id or 0], strata[p.id or 0]) for p in pairs if (p.id or 0) not in clustered]
    return units, straddling


def _systematic(ordered: Sequence[_Unit], size: int, rng: random.Random) -> list[bool]:
    """Which units a systematic sample over ``ordered`` takes, about ``size`` pairs in all.

    Each unit (a cluster or a lone pair) is one position, and as many positions are drawn as
    give ``size`` pairs at the mean unit size; so a pair's chance does not grow with its
    cluster's size, and every level of the order keeps its share in expectation.
    """
    total = sum(len(u.ids) for u in ordered)
    points = max(1, round(size * len(ordered) / total))
    step = len(ordered) / points
    start = rng.uniform(0, step)
    chosen = [False] * len(ordered)
    for k in range(points):
        chosen[min(len(ordered) - 1, int(start + k * step))] = True
    return chosen


# The levels whose shares the draw keeps, each mapping a stratum to its group there, with the weight
# of a pair off its share: split and kind (refusals, multi-hop) matter most, a whole stratum least.
_LEVELS: tuple[tuple[Callable[[Stratum], tuple[str, ...]], float], ...] = (
    (lambda s: (s[0],), 4.0), (lambda s: (s[1],), 4.0), (lambda s: (s[0], s[1]), 2.0),
    (lambda s: (s[2],), 1.0), (lambda s: (s[3],), 1.0), (lambda s: s, 0.5),
)
_SWAP_ROUNDS = 40
# Past this share of drawn pairs in near-duplicate clusters, the result suggests deduplicating first.
_CLUSTERED_SHARE_NOTE = 0.1
_SWAP_CANDIDATES = 30


class _Balance:
    """How far a draw is from every level's share of the full set: the weighted sum over levels and
    groups of |pairs drawn - the group's share of ``size``|, kept up to date as units go in and out.

    Units of one stratum and size change the distance alike, so each such kind of unit is weighed once.
    """

    def __init__(self, ordered: Sequence[_Unit], chosen: list[bool], size: int) -> None:
        self.ordered = ordered
        self.chosen = chosen
        self.quota: defaultdict[tuple[int, tuple[str, ...]], float] = defaultdict(float)
        self.taken: Counter[tuple[int, tuple[str, ...]]] = Counter()
        self.count = 0
        # (stratum, unit size) -> the units of that kind in the draw, and out of it.
        self.inside: dict[tuple[Stratum, int], set[int]] = {}
        self.outside: dict[tuple[Stratum, int], set[int]] = {}
        self._keys: dict[Stratum, list[tuple[int, tuple[str, ...]]]] = {}
        total = sum(len(u.ids) for u in ordered)
        for index, unit in enumerate(ordered):
            for key in self.keys(unit.stratum):
                self.quota[key] += size * len(unit.ids) / total
            self.outside.setdefault((unit.stratum, len(unit.ids)), set()).add(index)
            self.inside.setdefault((unit.stratum, len(unit.ids)), set())
            if chosen[index]:
                chosen[index] = False
                self.move(index, +1)

    def keys(self, stratum: Stratum) -> list[tuple[int, tuple[str, ...]]]:
        found = self._keys.get(stratum)
        if found is None:
            found = self._keys[stratum] = [(level, group(stratum)) for level, (group, _) in enumerate(_LEVELS)]
        return found

    def move(self, index: int, sign: int) -> None:
        """Put unit ``index`` in (+1) or take it out (-1)."""
        unit = self.ordered[index]
        n = sign * len(unit.ids)
        for key in self.keys(unit.stratum):
            self.taken[key] += n
        self.count += n
        self.chosen[index] = sign > 0
        kind = (unit.stratum, len(unit.ids))
        (self.outside if sign > 0 else self.inside)[kind].discard(index)
        (self.inside if sign > 0 else self.outside)[kind].add(index)

    def change(self, stratum: Stratum, size: int, sign: int) -> float:
        """How the distance changes if a unit of ``size`` pairs in ``stratum`` goes in (+1) or out (-1)."""
        n = sign * size
        out = 0.0
        for key in self.keys(stratum):
            gap = self.taken[key] - self.quota[key]
            out += _LEVELS[key[0]][1] * (abs(gap + n) - abs(gap))
        return out

    def best(self, sign: int, room: int | None = None) -> int | None:
        """The unit whose adding (+1, at most ``room`` pairs) or dropping (-1) helps most."""
        pool = self.outside if sign > 0 else self.inside
        best: tuple[float, int] | None = None
        for (stratum, size), members in pool.items():
            if not members or (room is not None and size > room):
                continue
            option = (self.change(stratum, size, sign), min(members))
            if best is None or option < best:
                best = option
        return None if best is None else best[1]

    def drop_order(self) -> list[int]:
        """Drawn units, those whose dropping helps most first."""
        drawn = [i for i, hit in enumerate(self.chosen) if hit]
        return sorted(drawn, key=lambda i: (self.change(self.ordered[i].stratum, len(self.ordered[i].ids), -1), i))

    def fill(self, size: int) -> None:
        """Drop the least useful units while over ``size`` pairs, add the most useful that fit while under."""
        while self.count > size:
            index = self.best(-1)
            assert index is not None
            self.move(index, -1)
        while self.count < size:
            index = self.best(+1, size - self.count)
            if index is None:
                return
            self.move(index, +1)

    def distance(self) -> float:
        """The whole distance from every level's share."""
        return sum(_LEVELS[k[0]][1] * abs(self.taken[k] - q) for k, q in self.quota.items())


def _fit_to_size(ordered: Sequence[_Unit], chosen: list[bool], size: int) -> None:
    """Drop or add whole units until the draw holds ``size`` pairs (a drawn cluster can overshoot),
    then swap units while that brings every level closer to its share of the full set."""
    balance = _Balance(ordered, chosen, size)
    balance.fill(size)
    for _ in range(_SWAP_ROUNDS):
        drawn = balance.drop_order()
        before, count, improved = balance.distance(), balance.count, False
        for index in drawn[:_SWAP_CANDIDATES]:
            saved = list(chosen)
            balance.move(index, -1)
            # A swap puts in a different kind of unit: one like the unit taken out would only
            # undo the move, and the search would stop where a real swap still helps.
            kind = (ordered[index].stratum, len(ordered[index].ids))
            held = balance.outside.pop(kind)
            balance.fill(size)
            balance.outside[kind] = held | balance.outside.get(kind, set())
            if balance.distance() < before - 1e-9 and balance.count >= count:
                improved = True
                break
            # Undo: put the draw back as it was.
            for i, (was, now) in enumerate(zip(saved, chosen, strict=True)):
                if was != now:
                    balance.move(i, +1 if was else -1)
        if not improved:
            return


def draw_trial_set(store: Store, size: int = DEFAULT_TRIAL_SIZE, options: ExportOptions | None = None,
                   *, seed: int | None = None) -> TrialDraw:
    """Draw a trial subset of about ``size`` of the pairs an export with ``options`` would write.

    Uses the stored split (run it first; ``export_trial_set`` does). ``seed`` defaults to the
    project's split seed. Returns the draw; raises ExportError when ``size`` is not positive or
    no pair is exportable.
    """
    if size < 1:
        raise ExportError(f"A trial subset of {size} pair(s) is empty: pass --size with a number above 0, e.g. 300.")
    options = options or ExportOptions()
    seed = store.settings.split.seed if seed is None else seed
    pairs = _eligible_pairs(store, options)
    if not pairs:
        what = "accepted or pending" if options.include_pending else "accepted"
        raise ExportError(f"No {what} pairs to draw a trial subset from: accept pairs in review, then try again.")
    strata = _strata(store, pairs)
    units, straddling = _units(store, pairs, strata)
    rng = random.Random(seed)
    by_stratum: dict[Stratum, list[_Unit]] = {}
    for unit in sorted(units, key=lambda u: u.ids[0]):
        by_stratum.setdefault(unit.stratum, []).append(unit)
    ordered: list[_Unit] = []
    for stratum in sorted(by_stratum):
        members = by_stratum[stratum]
        rng.shuffle(members)
        ordered += members
    available = sum(len(u.ids) for u in ordered)
    if not available:
        raise ExportError(
            f"All {len(pairs)} exportable pairs sit in near-duplicate clusters with members on both sides of the "
            "stored split: run `pairforge split` (it keeps each cluster on one side), then draw the trial subset again."
        )
    notes: list[str] = []
    if size >= available:
        chosen = [True] * len(ordered)
        notes.append(f"The trial subset asked for {size} pair(s) but only {available} can be drawn, so it holds them all.")
    else:
        chosen = _systematic(ordered, size, rng)
        _fit_to_size(ordered, chosen, size)
    ids = frozenset(i for unit, hit in zip(ordered, chosen, strict=True) if hit for i in unit.ids)
    drawn_units = [u for u, hit in zip(ordered, chosen, strict=True) if hit]
    if len(ids) < min(size, available):
        notes.append(f"The trial subset holds {len(ids)} pair(s), not {size}: near-duplicate clusters are drawn whole.")
    clustered = sum(len(u.ids) for u in drawn_units if len(u.ids) > 1)
    if clustered > _CLUSTERED_SHARE_NOTE * len(ids):
        notes.append(f"{clustered} of the {len(ids)} drawn pairs sit in near-duplicate clusters (drawn whole): "
                     "run `pairforge dedup` first for a trial subset of distinct pairs.")
    full_kinds = Counter(s[1] for s in strata.values())
    full_splits = Counter(s[0] for s in strata.values())
    return TrialDraw(
        size=size, seed=seed, pair_ids=ids, eligible=len(pairs), strata=len(by_stratum),
        clusters=sum(1 for u in drawn_units if len(u.ids) > 1),
        clustered_pairs=clustered, straddling=straddling,
        full_kinds=dict(full_kinds.most_common()),
        trial_kinds=dict(Counter(strata[i][1] for i in ids).most_common()),
        full_splits=dict(sorted(full_splits.items())),
        trial_splits=dict(sorted(Counter(strata[i][0] for i in ids).items())),
        notes=notes,
    )


def export_trial_set(
    store: Store,
    out_dir: str | Path,
    size: int = DEFAULT_TRIAL_SIZE,
    options: ExportOptions | None = None,
    *,
    seed: int | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportResult:
    """Draw a trial subset (``draw_trial_set``) and export it to ``out_dir`` with ``options``
    through the one exporter: the same files, card and trainer recipes as a full export, the
    card saying it is a trial subset and how it was drawn. Raises ExportError on expected failures."""
    from engine.export.writer import check_target, ensure_split, export_dataset

    options = options or ExportOptions()
    target = Path(out_dir).expanduser().resolve()
    check_target(store, target, options.force)
    notes: list[str] = []
    ensure_split(store, notes)
    draw = draw_trial_set(store, size, options, seed=seed)
    draw.notes[:0] = notes
    return export_dataset(store, target, options, on_progress=on_progress, trial=draw)


__all__ = ["DEFAULT_TRIAL_SIZE", "TrialDraw", "draw_trial_set", "export_trial_set"]
