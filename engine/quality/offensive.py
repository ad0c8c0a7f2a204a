"""Offensive language, scored with the classifier that the ``alt-profanity-check`` package ships (offline).

The package's model is a TF-IDF vectorizer and calibrated linear SVMs (scikit-learn). Called through
scikit-learn it costs about 7 ms a text, too slow for a check that runs on every new pair; so the
bundled model is read once and its linear weights are applied directly (same probabilities, to
rounding, in microseconds). Each sentence is scored on its own, because one insult inside a long,
polite answer is diluted in a whole-text score.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
# Sentences are scored in passages of at least this many words the model knows.
MIN_TERMS = 5


@dataclass(frozen=True)
class OffensiveScore:
    """The highest sentence score of a text (0-1) and that sentence."""

    probability: float
    sentence: str


class OffensiveClassifier:
    """The bundled model's weights: idf and one weight per calibration fold for every term."""

    def __init__(
        self,
        analyzer: Callable[[str], list[str]],
        terms: dict[str, tuple[float, tuple[float, ...]]],
        intercepts: tuple[float, ...],
        calibration: tuple[tuple[float, float], ...],
    ) -> None:
        self._analyze = analyzer
        self._terms = terms
        self._intercepts = intercepts
        self._calibration = calibration
        self.token_pattern = _TOKEN_PATTERN

    @classmethod
    def from_package(cls) -> OffensiveClassifier:
        """Read the model ``alt-profanity-check`` ships; raises ImportError when the package is missing."""
        from profanity_check import profanity_check as bundled

        vectorizer, model = bundled.vectorizer, bundled.model
        folds = model.calibrated_classifiers_
        weights = [fold.estimator.coef_[0] for fold in folds]
        idf = vectorizer.idf_
        terms = {
            term: (float(idf[column]), tuple(float(w[column]) for w in weights))
            for term, column in vectorizer.vocabulary_.items()
        }
        intercepts = tuple(float(fold.estimator.intercept_[0]) for fold in folds)
        calibration = tuple((float(fold.calibrators[0].a_), float(fold.calibrators[0].b_)) for fold in folds)
        # The vectorizer lowercases and applies its token pattern; its stop words are not in the vocabulary,
        # so keeping only vocabulary terms (as ``probability`` does) drops them too.
        pattern = re.compile(vectorizer.token_pattern)
        classifier = cls(lambda text: pattern.findall(text.lower()), terms, intercepts, calibration)
        classifier.token_pattern = vectorizer.token_pattern
        return classifier

    def probability(self, text: str) -> float:
        """The model's probability that ``text`` is offensive (what the package's ``predict_prob`` returns)."""
        return self._probability([t for t in self._analyze(text) if t in self._terms])

    def _probability(self, known: list[str]) -> float:
        vector = [(n * self._terms[t][0], self._terms[t][1]) for t, n in Counter(known).items()]
        norm = math.sqrt(sum(x * x for x, _ in vector)) or 1.0
        total = 0.0
        for fold, (intercept, (a, b)) in enumerate(zip(self._intercepts, self._calibration, strict=True)):
            decision = intercept + sum(x * w[fold] for x, w in vector) / norm
            total += 1.0 / (1.0 + math.exp(a * decision + b))
        return total / len(self._intercepts)

    def score(self, text: str) -> OffensiveScore:
        """The most offensive passage of ``text`` (a sentence, joined with the next while it is short) and its probability."""
        best = OffensiveScore(0.0, "")
        sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
        pending: list[str] = []
        known: list[str] = []
        for position, sentence in enumerate(sentences):
            pending.append(sentence)
            known.extend(t for t in self._analyze(sentence) if t in self._terms)
            # A sentence of two or three known words ("or it will die again") swings the model on one word.
            if len(known) < MIN_TERMS and position < len(sentences) - 1:
                continue
            probability = self._probability(known)
            if probability > best.probability:
                best = OffensiveScore(probability, " ".join(pending))
            pending, known = [], []
        return best


    def to_json(self) -> str:
        """The weights as JSON (what ``from_json`` reads back)."""
        return json.dumps({
            "terms": self._terms, "intercepts": self._intercepts, "calibration": self._calibration,
        })

    @classmethod
    def from_json(cls, text: str) -> OffensiveClassifier:
        """A classifier from ``to_json``'s output, with the package's token pattern; raises ValueError when malformed."""
        data = json.loads(text)
        try:
            terms = {t: (float(v[0]), tuple(float(w) for w in v[1])) for t, v in data["terms"].items()}
            intercepts = tuple(float(x) for x in data["intercepts"])
            calibration = tuple((float(a), float(b)) for a, b in data["calibration"])
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"bad classifier cache: {exc}") from exc
        pattern = re.compile(_TOKEN_PATTERN)
        return cls(lambda text: pattern.findall(text.lower()), terms, intercepts, calibration)


# The token pattern of the package's vectorizer (checked against it when the cache is written).
_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_CACHE_FORMAT = 1


def _cache_file() -> Path | None:
    try:
        version = importlib.metadata.version("alt-profanity-check")
    except importlib.metadata.PackageNotFoundError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "pairforge" / f"offensive-{version}-v{_CACHE_FORMAT}.json"


def _load() -> OffensiveClassifier:
    """The weights from the cache when there, else from the package (scikit-learn, about 2 s) into the cache."""
    cache = _cache_file()
    if cache is not None and cache.is_file():
        try:
            return OffensiveClassifier.from_json(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Ignoring the offensive-language cache %s (%s); reading the package's model.", cache, exc)
    classifier = OffensiveClassifier.from_package()
    if cache is not None and classifier.token_pattern == _TOKEN_PATTERN:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(".tmp")
            partial.write_text(classifier.to_json(), encoding="utf-8")
            partial.replace(cache)  # atomic: a reader never sees half a file
        except OSError as exc:  # a read-only home only costs the next start its 2 s
            log.info("Cannot write the offensive-language cache %s: %s", cache, exc.strerror)
    return classifier


_lock = threading.Lock()
_loaded: list[OffensiveClassifier | None] = []


def offensive_classifier() -> OffensiveClassifier | None:
    """The classifier, read on first use; None when alt-profanity-check is not installed.

    The first read of the package's model takes about 2 s (scikit-learn loads); its weights are then kept
    in the user's cache folder, so later processes read them in a few tens of milliseconds.
    """
    with _lock:
        if not _loaded:
            try:
                _loaded.append(_load())
            except ImportError:
                log.warning("alt-profanity-check is not installed; the offensive_content check is off.")
                _loaded.append(None)
        return _loaded[0]


__all__ = ["OffensiveClassifier", "OffensiveScore", "offensive_classifier"]
