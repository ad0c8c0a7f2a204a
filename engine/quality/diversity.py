"""Diversity of inputs: how the dataset's instructions open, how varied their wording is, how their lengths spread.

A model fine-tuned on questions that all open "What is the ..." or share one length learns that one
phrasing. Three measures catch it, each kept incrementally (an added or removed pair costs a few dict
updates, never a recount):

- **openers**: per (kind, mode), the share of instructions that begin with the commonest first three words;
- **distinct-2**: distinct word bigrams over all bigrams of the instructions; raw distinct-2 falls as any
  dataset grows, so the warning reads it *rarefied* to ``RAREFY_BIGRAMS`` bigrams (the distinct bigrams
  expected in a random draw of that many, worked out from how often each bigram occurs), which compares
  datasets of any size;
- **length spread**: per (kind, mode), the coefficient of variation (stdev / mean) of instruction lengths
  in words.

The thresholds come from ``bench/diversity_bench.py``: a labeled set of diverse datasets (including ones
where many questions legitimately open "How do I") and repetitive ones; the README quotes its rates.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, pairwise

from pydantic import BaseModel, ConfigDict, computed_field

# Groups (kind, mode) with fewer instructions than this get no opener or length warning.
MIN_GROUP_PAIRS = 20
# The dataset needs this many instructions before distinct-2 is judged.
MIN_DISTINCT_PAIRS = 30
# One opener (first three words) on more than this share of a group's instructions is a warning.
OPENER_MAX_SHARE = 0.6
# Distinct-2 rarefied to RAREFY_BIGRAMS bigrams below this is a warning.
DISTINCT2_MIN = 0.6
RAREFY_BIGRAMS = 1000
# Instruction lengths (words) of a group with a coefficient of variation below this is a warning.
LENGTH_MIN_CV = 0.15
# Words of an instruction kept for the measures: a pasted essay must not cost more than a question.
MAX_WORDS = 64
OPENER_WORDS = 3
# Characters of an instruction read: MAX_WORDS words fit in them.
_MAX_CHARS = 800
# textstats' word pattern, run on lowercased text (one lower() call, not one per word).
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def instruction_words(text: str) -> str:
    """The lowercased words of an instruction (at most MAX_WORDS), joined by single spaces."""
    return " ".join(_WORD.findall(text[:_MAX_CHARS].lower())[:MAX_WORDS])


def opener_of(words: str) -> str:
    """The first three words of ``instruction_words`` output."""
    return " ".join(words.split(" ", OPENER_WORDS)[:OPENER_WORDS])


def _bigram_keys(words: str) -> Iterable[int]:
    parts = words.split()
    # Hashes, not strings, as keys: the tally keeps one int per distinct bigram of the dataset.
    return map(hash, pairwise(parts))


class OpenerShare(BaseModel):
    """The commonest opener of one (kind, mode) group and the spread of its lengths."""

    model_config = ConfigDict(frozen=True)

    kind: str
    mode: str
    pairs: int
    opener: str
    count: int
    share: float
    length_mean: float
    length_cv: float


class DiversityReport(BaseModel):
    """How varied the dataset's instructions are (rejected pairs left out)."""

    model_config = ConfigDict(frozen=True)

    instructions: int = 0
    bigrams: int = 0
    distinct_bigrams: int = 0
    distinct_2: float = 0.0
    """Distinct bigrams over all bigrams of the instructions."""
    distinct_2_rarefied: float = 0.0
    """Distinct-2 expected in a random draw of RAREFY_BIGRAMS bigrams (the raw figure when there are fewer)."""
    length_mean: float = 0.0
    length_cv: float = 0.0
    """Stdev over mean of instruction lengths in words, over all groups."""
    groups: list[OpenerShare] = []
    warnings: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        """``warning`` when a measure is poor, ``ok`` when judged and fine, ``too few`` before there is enough to judge."""
        if self.warnings:
            return "warning"
        if self.instructions < MIN_DISTINCT_PAIRS and not any(g.pairs >= MIN_GROUP_PAIRS for g in self.groups):
            return "too few"
        return "ok"

    def summary(self) -> str:
        """One line for the panel and ``check``: the worst opener share, distinct-2 and the length spread."""
        if not self.instructions:
            return "Diversity: no instructions yet."
        top = max(self.groups, key=lambda g: (g.share, g.pairs), default=None)
        opener = f'top opener "{top.opener}" {top.share:.0%} of {top.kind}/{top.mode}' if top else "no opener"
        return (f"Diversity: {opener}; distinct-2 {self.distinct_2_rarefied:.2f}; "
                f"length spread {self.length_cv:.2f}.")


@dataclass
class _Group:
    n: int = 0
    length_sum: int = 0
    length_squares: int = 0
    openers: Counter[str] = field(default_factory=Counter)
    # The commonest opener, kept as counts rise; a fall of that opener marks it for a rescan at
    # report time, so an update never scans a group's openers.
    top: tuple[str, int] = ("", 0)
    top_stale: bool = False

    def count_opener(self, opener: str, sign: int) -> None:
        count = self.openers[opener] + sign
        if count > 0:
            self.openers[opener] = count
        else:
            del self.openers[opener]
        if self.top_stale:
            return
        top, top_count = self.top
        if sign < 0:
            self.top_stale = opener == top
        elif opener == top or count > top_count or (count == top_count and opener < top):
            self.top = (opener, count)

    def commonest(self) -> tuple[str, int]:
        if self.top_stale:
            # Ties go to the alphabetically first opener, so a rebuild names the same one.
            self.top = min(self.openers.items(), key=lambda item: (-item[1], item[0]), default=("", 0))
            self.top_stale = False
        return self.top


def _cv(n: int, total: int, squares: int) -> tuple[float, float]:
    """Mean and coefficient of variation from a count, a sum and a sum of squares."""
    if n == 0:
        return 0.0, 0.0
    mean = total / n
    variance = max(0.0, squares / n - mean * mean)
    return mean, (math.sqrt(variance) / mean if mean else 0.0)


def rarefied_distinct(frequencies: Counter[int], total: int, draw: int) -> float:
    """Expected distinct items over ``draw`` in a random draw of ``draw`` of ``total`` items (without replacement).

    ``frequencies`` maps an occurrence count c to how many distinct items occur c times. An item
    occurring c times is missed by the draw with probability C(total - c, draw) / C(total, draw).
    """
    if total <= 0:
        return 0.0
    if total <= draw:
        return sum(frequencies.values()) / total
    base = math.lgamma(total + 1) - math.lgamma(total - draw + 1)
    expected = 0.0
    for count, items in frequencies.items():
        if items <= 0:
            continue
        rest = total - count
        missed = 0.0 if rest < draw else math.exp(math.lgamma(rest + 1) - math.lgamma(rest - draw + 1) - base)
        expected += items * (1.0 - missed)
    return expected / draw


class DiversityTally:
    """The incremental counts behind a DiversityReport; not thread-safe (the live report's lock guards it)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], _Group] = {}
        self._bigrams: Counter[int] = Counter()
        # How many distinct bigrams occur c times, by c: rarefaction needs nothing else.
        self._frequencies: Counter[int] = Counter()
        self._total_bigrams = 0
        self._n = 0
        self._length_sum = 0
        self._length_squares = 0

    def _count_shape(self, kind: str, mode: str, words: str, sign: int) -> None:
        """Count the instruction's group, opener and length (everything but its bigrams)."""
        length = words.count(" ") + 1 if words else 0
        group = self._groups.get((kind, mode))
        if group is None:
            group = self._groups[(kind, mode)] = _Group()
        group.n += sign
        group.length_sum += sign * length
        group.length_squares += sign * length * length
        group.count_opener(opener_of(words), sign)
        if group.n <= 0:
            del self._groups[(kind, mode)]
        self._n += sign
        self._length_sum += sign * length
        self._length_squares += sign * length * length

    def add_many(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Count many (kind, mode, words) instructions at once: the bigrams in one C-speed pass (a full build)."""
        by_group: dict[tuple[str, str], list[str]] = {}
        for kind, mode, words in items:
            by_group.setdefault((kind, mode), []).append(words)
        every: list[str] = []
        for key, texts in by_group.items():
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group()
            lengths = [w.count(" ") + 1 if w else 0 for w in texts]
            total, squares = sum(lengths), sum(n * n for n in lengths)
            group.n += len(texts)
            group.length_sum += total
            group.length_squares += squares
            group.openers.update(map(opener_of, texts))
            group.top_stale = True
            self._n += len(texts)
            self._length_sum += total
            self._length_squares += squares
            every += texts
        before = self._total_bigrams
        self._bigrams.update(chain.from_iterable(map(_bigram_keys, every)))
        self._total_bigrams = sum(self._bigrams.values())
        if self._total_bigrams != before:
            self._frequencies = Counter(self._bigrams.values())

    def add(self, kind: str, mode: str, words: str, sign: int = 1) -> None:
        """Count (``sign`` 1) or uncount (-1) one instruction given as ``instruction_words`` output."""
        self._count_shape(kind, mode, words, sign)
        bigrams, frequencies = self._bigrams, self._frequencies
        for key in _bigram_keys(words):
            before = bigrams[key]
            after = before + sign
            if before:
                frequencies[before] -= 1
                if not frequencies[before]:
                    del frequencies[before]
            if after > 0:
                bigrams[key] = after
                frequencies[after] += 1
            else:
                del bigrams[key]
            self._total_bigrams += sign

    def report(self) -> DiversityReport:
        """The measures as they stand, with a warning for each poor one."""
        groups: list[OpenerShare] = []
        for (kind, mode), group in sorted(self._groups.items()):
            if group.n <= 0 or not group.openers:
                continue
            opener, count = group.commonest()
            mean, cv = _cv(group.n, group.length_sum, group.length_squares)
            groups.append(OpenerShare(kind=kind, mode=mode, pairs=group.n, opener=opener, count=count,
                                      share=round(count / group.n, 4), length_mean=round(mean, 2),
                                      length_cv=round(cv, 4)))
        total = self._total_bigrams
        distinct = len(self._bigrams)
        mean, cv = _cv(self._n, self._length_sum, self._length_squares)
        rarefied = round(rarefied_distinct(self._frequencies, total, RAREFY_BIGRAMS), 4)
        warnings: list[str] = []
        for g in groups:
            if g.pairs < MIN_GROUP_PAIRS:
                continue
            if g.share > OPENER_MAX_SHARE:
                warnings.append(
                    f'{g.share:.0%} of {g.kind} pairs in mode {g.mode} open with "{g.opener}" (limit {OPENER_MAX_SHARE:.0%}); '
                    "generate more with other phrasings or edit some."
                )
            if g.length_cv < LENGTH_MIN_CV:
                warnings.append(
                    f"The instructions of {g.kind} pairs in mode {g.mode} are all about {g.length_mean:.0f} words long (spread "
                    f"{g.length_cv:.2f}, limit {LENGTH_MIN_CV:.2f}); add short and long questions."
                )
        if self._n >= MIN_DISTINCT_PAIRS and rarefied < DISTINCT2_MIN:
            warnings.append(
                f"Instructions repeat their wording: distinct-2 {rarefied:.2f} per {RAREFY_BIGRAMS} bigrams "
                f"(limit {DISTINCT2_MIN:.2f}); generate questions in other words."
            )
        return DiversityReport(
            instructions=self._n, bigrams=total, distinct_bigrams=distinct,
            distinct_2=round(distinct / total, 4) if total else 0.0, distinct_2_rarefied=rarefied,
            length_mean=round(mean, 2), length_cv=round(cv, 4), groups=groups, warnings=warnings,
        )


def measure_diversity(instructions: Iterable[tuple[str, str, str]]) -> DiversityReport:
    """The diversity report of (kind, mode, instruction) triples, e.g. a dataset not in a store."""
    tally = DiversityTally()
    for kind, mode, text in instructions:
        tally.add(kind, mode, instruction_words(text))
    return tally.report()


__all__ = [
    "DISTINCT2_MIN", "LENGTH_MIN_CV", "MIN_DISTINCT_PAIRS", "MIN_GROUP_PAIRS", "OPENER_MAX_SHARE", "RAREFY_BIGRAMS",
    "DiversityReport", "DiversityTally", "OpenerShare", "instruction_words", "measure_diversity", "opener_of",
    "rarefied_distinct",
]
