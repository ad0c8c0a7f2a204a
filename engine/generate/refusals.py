"""Refusal topics: what the corpus does not cover, verified by searching it.

The model proposes adjacent topics from an overview of the corpus; each is kept
only when :meth:`CorpusIndex.is_absent` agrees. A built-in list of generic
adjacent topics fills the gaps, so a run always has enough refusals even when a
small model proposes nothing usable.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from engine.generate.retrieval import CorpusIndex
from engine.models import Chunk, Document

# Topics next to most software and technical documentation but rarely inside it.
GENERIC_ADJACENT_TOPICS: tuple[str, ...] = (
    "Kubernetes operator development",
    "Terraform state locking",
    "Apache Kafka consumer groups",
    "RabbitMQ quorum queues",
    "Celery task routing",
    "AWS Lambda cold starts",
    "Google BigQuery pricing",
    "Snowflake warehouse sizing",
    "GraphQL schema federation",
    "React server components",
    "iOS push notifications",
    "Android battery optimisation",
    "Windows Active Directory",
    "SAP invoice processing",
    "Salesforce Apex triggers",
    "Oracle RAC failover",
    "MongoDB sharding strategy",
    "Elasticsearch index lifecycle",
    "GPU cluster scheduling with Slurm",
    "blockchain smart contracts",
    "quantum computing algorithms",
    "machine learning model fine-tuning",
    "computer vision pipelines",
    "mobile app store submission",
    "search engine optimisation",
    "email marketing campaigns",
    "payroll tax rules",
    "GDPR legal advice",
    "software licence negotiation",
    "employee hiring process",
    "office network cabling",
    "laptop hardware recommendations",
    "home Wi-Fi troubleshooting",
    "video game engines",
    "3D printing settings",
    "cryptocurrency trading",
    "stock market predictions",
    "personal tax returns",
    "medical symptoms",
    "travel visa requirements",
    "cooking recipes",
    "fitness training plans",
    "weather forecasts",
    "sports results",
    "the company's quarterly revenue",
    "the product's future roadmap",
    "competitor pricing",
    "Microsoft Excel macros",
    "Photoshop image editing",
    "COBOL mainframe migration",
    "Fortran numerical libraries",
    "Rust embedded firmware",
    "PHP WordPress plugins",
    "Ruby on Rails migrations",
    "Haskell type classes",
    "Erlang hot code loading",
    "Bluetooth Low Energy pairing",
    "satellite communication protocols",
    "industrial PLC programming",
    "audio signal processing",
)

# Ways a user asks about a topic; varied so refusal questions do not all look alike.
QUESTION_FORMS: tuple[str, ...] = (
    "How do I get started with {topic}?",
    "Can you explain {topic} to me?",
    "What's the best practice for {topic}?",
    "I'm stuck on {topic}. What should I do?",
    "Could you walk me through {topic}?",
    "What do you recommend for {topic}?",
    "Quick question about {topic}: how does it work?",
    "Is there a guide for {topic} somewhere in here?",
)


def corpus_overview(documents: Sequence[Document], chunks: Sequence[Chunk], *, limit: int = 40) -> str:
    """A short description of what the corpus covers: document titles and its commonest concepts."""
    titles = [d.title or d.path.rsplit("/", 1)[-1] for d in documents]
    concepts = top_concepts(chunks, limit=limit)
    lines = [f"- {title}" for title in titles[:30]]
    if concepts:
        lines.append("Key topics: " + ", ".join(concepts))
    return "\n".join(lines)


def top_concepts(chunks: Sequence[Chunk], *, limit: int = 12) -> list[str]:
    """The concepts named by the most chunks, most common first."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for chunk in chunks:
        for concept in dict.fromkeys(chunk.concepts):
            key = concept.lower()
            if not _readable_concept(concept):
                continue
            spelling.setdefault(key, concept)
            counts[key] += 1
    return [spelling[key] for key, _ in counts.most_common(limit)]


_FILE_LIKE = re.compile(r"\.[a-z]{1,5}$|[/:=<>{}()\[\]]|^\d")


def _readable_concept(concept: str) -> bool:
    # File names, paths, addresses and literals read badly in a sentence about coverage.
    return len(concept) >= 4 and not _FILE_LIKE.search(concept.lower()) and concept.lower() not in {"true", "false", "none", "null"}


def coverage_phrase(documents: Sequence[Document], chunks: Sequence[Chunk], *, limit: int = 4) -> str:
    """What the knowledge base covers, as a phrase for a declination ("A, B, C and D")."""
    names = top_concepts(chunks, limit=limit) or [
        d.title or d.path.rsplit("/", 1)[-1] for d in documents[:limit]
    ]
    if not names:
        return "the documents it was built from"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def absent_generic_topics(index: CorpusIndex) -> list[str]:
    """The built-in topics the corpus does not cover, in list order."""
    return [topic for topic in GENERIC_ADJACENT_TOPICS if index.is_absent(topic)]


def question_for(topic: str, variant: int) -> str:
    """A user's question about ``topic`` in one of several phrasings chosen by ``variant``."""
    return QUESTION_FORMS[variant % len(QUESTION_FORMS)].format(topic=topic)


__all__ = [
    "GENERIC_ADJACENT_TOPICS",
    "QUESTION_FORMS",
    "absent_generic_topics",
    "corpus_overview",
    "coverage_phrase",
    "question_for",
    "top_concepts",
]
