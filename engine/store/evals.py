"""Eval probes and answers: the questions a fine-tuned model is tested on, and what each run answered.

Probes stay with the project (validation questions, their paraphrases, out-of-corpus and
ambiguous questions), so every eval run asks the same ones and runs compare over time. An
answer belongs to one run (a row of ``runs`` with task ``eval``) and one probe.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.store.database import Database

# What each kind of probe tests.
VALIDATION, PARAPHRASE, OUT_OF_CORPUS, AMBIGUOUS = "validation", "paraphrase", "out_of_corpus", "ambiguous"
PROBE_KINDS = (VALIDATION, PARAPHRASE, OUT_OF_CORPUS, AMBIGUOUS)
# Probes whose question the corpus answers: they should get an answer, not a decline.
IN_CORPUS_KINDS = (VALIDATION, PARAPHRASE)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Probe:
    """One stored question a model is evaluated on."""

    kind: str
    question: str
    reference: str = ""
    """The answer the dataset gives (validation probes and their paraphrases), else empty."""
    pair_id: int | None = None
    """The validation pair the question comes from."""
    parent_id: int | None = None
    """For a paraphrase: the validation probe it rephrases."""
    chunk_ids: tuple[int, ...] = ()
    """The source chunks the answer is grounded on."""
    topic: str = ""
    """For an out-of-corpus probe: the topic the corpus does not cover."""
    meaning: float | None = None
    """For a paraphrase: the share of the original's content words it keeps."""
    id: int | None = None


@dataclass(frozen=True)
class ProbeAnswer:
    """What one run's model answered to one probe, and what was measured on the answer."""

    run_id: int
    probe_id: int
    model: str
    answer: str
    flags: tuple[dict[str, str], ...] = ()
    """The gate's warnings on the answer: ``check``, ``severity`` and ``reason`` each."""
    failures: tuple[str, ...] = ()
    """Why the probe failed (copied, non_answer, wrongly_refused, wrongly_answered, no_clarification); empty when it passed."""
    declined: bool = False
    clarified: bool = False
    copied: bool = False
    copy_share: float = 0.0
    agreement: float | None = None
    """The judge's 0-10 score of agreement with the reference, when the probe has one."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def failed(self) -> bool:
        """True when the probe failed for any reason."""
        return bool(self.failures)


def _probe_from_row(r: sqlite3.Row) -> Probe:
    return Probe(
        id=r["id"], kind=r["kind"], question=r["question"], reference=r["reference"], pair_id=r["pair_id"],
        parent_id=r["parent_id"], chunk_ids=tuple(json.loads(r["chunk_ids"])), topic=r["topic"], meaning=r["meaning"],
    )


def _answer_from_row(r: sqlite3.Row) -> ProbeAnswer:
    return ProbeAnswer(
        run_id=r["run_id"], probe_id=r["probe_id"], model=r["model"], answer=r["answer"],
        flags=tuple(json.loads(r["flags"])), failures=tuple(json.loads(r["failures"])), declined=bool(r["declined"]),
        clarified=bool(r["clarified"]), copied=bool(r["copied"]), copy_share=r["copy_share"], agreement=r["agreement"],
    )


class EvalRepository:
    """The ``eval_probes`` and ``eval_answers`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_probes(self, probes: Iterable[Probe]) -> list[Probe]:
        """Store new probes in one transaction; a question already stored for its kind is skipped. Returns those stored."""
        added: list[Probe] = []
        with self.db.transaction() as conn:
            for probe in probes:
                row = conn.execute(
                    "INSERT OR IGNORE INTO eval_probes(kind, question, reference, pair_id, parent_id, chunk_ids, "
                    "topic, meaning, created_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                    (probe.kind, probe.question, probe.reference, probe.pair_id, probe.parent_id,
                     json.dumps(list(probe.chunk_ids)), probe.topic, probe.meaning, _now()),
                ).fetchone()
                if row is not None:
                    added.append(Probe(**{**probe.__dict__, "id": row["id"]}))
        return added

    def probes(self, kind: str | None = None, ids: Sequence[int] | None = None) -> list[Probe]:
        """Stored probes in the order they were made (of one kind, or the ones ``ids``, when given)."""
        clauses, params = [], []
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if ids is not None:
            clauses.append(f"id IN ({','.join(str(int(i)) for i in ids) or '-1'})")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_probe_from_row(r) for r in self.db.read(f"SELECT * FROM eval_probes {where} ORDER BY id", params)]

    def get_probe(self, probe_id: int) -> Probe | None:
        """One probe, or None when there is no such probe."""
        found = self.probes(ids=[probe_id])
        return found[0] if found else None

    def probe_counts(self) -> dict[str, int]:
        """How many probes of each kind are stored."""
        rows = self.db.read("SELECT kind, COUNT(*) AS n FROM eval_probes GROUP BY kind")
        counts = dict.fromkeys(PROBE_KINDS, 0)
        counts.update({r["kind"]: r["n"] for r in rows})
        return counts

    def complete(self, conn: sqlite3.Connection, answer: ProbeAnswer) -> None:
        """Write ``answer`` on ``conn`` (inside the caller's transaction, which marks its job done)."""
        conn.execute(
            "INSERT OR REPLACE INTO eval_answers(run_id, probe_id, model, answer, flags, failures, declined, "
            "clarified, copied, copy_share, agreement, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (answer.run_id, answer.probe_id, answer.model, answer.answer,
             json.dumps(list(answer.flags), ensure_ascii=False), json.dumps(list(answer.failures)),
             int(answer.declined), int(answer.clarified), int(answer.copied), answer.copy_share, answer.agreement,
             _now()),
        )

    def answers(self, run_id: int) -> dict[int, ProbeAnswer]:
        """A run's answers by probe id."""
        rows = self.db.read("SELECT * FROM eval_answers WHERE run_id = ? ORDER BY probe_id", (run_id,))
        return {r["probe_id"]: _answer_from_row(r) for r in rows}

    def runs(self) -> list[dict[str, Any]]:
        """Every eval run, oldest first: id, created_at, params (model, role, compared run) and answer count."""
        rows = self.db.read(
            "SELECT r.id, r.params, r.created_at, "
            "(SELECT COUNT(*) FROM eval_answers a WHERE a.run_id = r.id) AS answered, "
            "(SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id) AS jobs "
            "FROM runs r WHERE r.task = 'eval' ORDER BY r.id"
        )
        return [{**dict(r), "params": json.loads(r["params"])} for r in rows]


__all__ = [
    "AMBIGUOUS",
    "IN_CORPUS_KINDS",
    "OUT_OF_CORPUS",
    "PARAPHRASE",
    "PROBE_KINDS",
    "VALIDATION",
    "EvalRepository",
    "Probe",
    "ProbeAnswer",
]
