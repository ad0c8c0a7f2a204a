"""Quality engine: per-pair checks, the live dataset report, the near-duplicate index, token counts, PII, split.

``find_copies`` gives a mimicry warning's copied spans (answer and source offsets) for highlighting.
"""

from __future__ import annotations

from engine.quality.checks import check_pair, copy_verdict, recheck
from engine.quality.dedup import (
    Cluster,
    DedupResult,
    NearDuplicateIndex,
    SimilarPair,
    dedup,
    diff_words,
    find_clusters,
    similarity,
)
from engine.quality.diversity import DiversityReport, OpenerShare, measure_diversity
from engine.quality.mimicry import CopiedSpan, CopyReport, find_copies
from engine.quality.pii import (
    PLACEHOLDERS,
    PiiMatch,
    find_pii,
    redact_pair,
    redact_pairs,
    redact_text,
)
from engine.quality.registry import CHECKS, CheckInfo
from engine.quality.report import (
    Contradiction,
    DatasetReport,
    DocumentShare,
    LiveReport,
    Threshold,
    TokenStats,
    round_up_seq_length,
)
from engine.quality.split import SplitResult, make_split
from engine.quality.tokens import TokenCounter

__all__ = [
    "CHECKS",
    "PLACEHOLDERS",
    "CheckInfo",
    "Cluster",
    "Contradiction",
    "CopiedSpan",
    "CopyReport",
    "DatasetReport",
    "DedupResult",
    "DiversityReport",
    "DocumentShare",
    "LiveReport",
    "NearDuplicateIndex",
    "OpenerShare",
    "PiiMatch",
    "SimilarPair",
    "SplitResult",
    "Threshold",
    "TokenCounter",
    "TokenStats",
    "check_pair",
    "copy_verdict",
    "dedup",
    "diff_words",
    "find_clusters",
    "find_copies",
    "find_pii",
    "make_split",
    "measure_diversity",
    "recheck",
    "redact_pair",
    "redact_pairs",
    "redact_text",
    "round_up_seq_length",
    "similarity",
]
