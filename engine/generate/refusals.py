"""Refusal topics: neighbours of the corpus it does not cover, verified by searching it.

The model proposes neighbouring topics from an overview of the corpus. A proposal is
kept only when :class:`RefusalTopicFilter` finds it a meaningful noun phrase, not a
piece of the prompt, not a document's path, file name, title or heading, and absent
from both the chunks and the titles; its question must name it (or is asked again
from the topic). A round that keeps nothing is followed by a second request listing
the rejected proposals; only then does a built-in list of generic topics fill in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.generate.retrieval import STOPWORDS, CorpusIndex, tokenize
from engine.ingest.boilerplate import heading_text, is_navigation_heading
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


def corpus_overview(documents: Sequence[Document], chunks: Sequence[Chunk], coverage: Sequence[str] = (),
                    *, limit: int = 40) -> str:
    """A short description of what the corpus covers: document titles, the coverage items and its commonest concepts."""
    titles = [d.title or d.path.rsplit("/", 1)[-1] for d in documents]
    lines = [f"- {title}" for title in titles[:30]]
    if coverage:
        lines.append("Subjects: " + "; ".join(coverage))
    concepts = top_concepts(chunks, limit=limit)
    if concepts:
        lines.append("Key terms: " + ", ".join(concepts))
    return "\n".join(lines)


def top_concepts(chunks: Sequence[Chunk], *, limit: int = 12) -> list[str]:
    """The concepts named by the most chunks, most common first (navigation headings left out)."""
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
    # File names, paths, addresses, literals and navigation read badly in a sentence about coverage.
    return (
        len(concept) >= 4 and not _FILE_LIKE.search(concept.lower())
        and concept.lower() not in {"true", "false", "none", "null"} and not is_navigation_heading(concept)
    )


def absent_generic_topics(index: CorpusIndex) -> list[str]:
    """The built-in topics the corpus does not cover, in list order."""
    return [topic for topic in GENERIC_ADJACENT_TOPICS if index.is_absent(topic)]


def question_for(topic: str, variant: int) -> str:
    """A user's question about ``topic`` in one of several phrasings chosen by ``variant``."""
    return QUESTION_FORMS[variant % len(QUESTION_FORMS)].format(topic=topic)


# Words a noun phrase naming a topic does not have: verbs and negations of a sentence.
_SENTENCE_WORDS_TEXT = (
    "is are was were be been being am says say said does do did doing has have had will would should shall "
    "must may might never not isn't aren't don't doesn't can't cannot won't"
)
_SENTENCE_WORDS = frozenset(_SENTENCE_WORDS_TEXT.split())
# A topic does not start with these (a sentence's middle does) ...
_BAD_FIRST_TEXT = (
    "of to in on at by for from with into onto than and or but nor so that which who whom whose because if "
    "when while where whether as according about per via"
)
_BAD_FIRST = frozenset(_BAD_FIRST_TEXT.split())
# ... nor end with them.
_BAD_LAST_TEXT = (
    "a an the of to in on at by for from with into and or but nor than that which who whose because if when "
    "while as according about very its their your our my this these those such each every any some no"
)
_BAD_LAST = frozenset(_BAD_LAST_TEXT.split())
_NOT_IN_A_NAME = re.compile(r"[?!;\"“”«»<>{}\[\]|\\=]")
_STRAY_QUOTE = re.compile(r"(?<![A-Za-z])'|'(?![A-Za-z])")
# Document files by their extension; code extensions are left out, as products carry them ("Node.js").
_PATH_LIKE = re.compile(r"[\w-]+\.(?:html?|md|markdown|rst|txt|pdf|jsonl|toml|ya?ml|csv|xml|docx?)\b|/", re.I)
_NAME_WORDS = re.compile(r"[a-z0-9+#]+")
MAX_TOPIC_WORDS = 8
# Rounds of proposals one refusal job asks the model for before it takes a built-in topic.
PROPOSAL_ROUNDS = 2
# The line a follow-up request adds under the refusal prompt.
TAKEN_LINE = "Already taken or invalid (do not propose these again): {topics}."


def _name_words(text: str) -> str:
    """Lower-case words joined by single spaces, for comparing names ("Thread-Safety.html" -> "thread safety html")."""
    return " ".join(_NAME_WORDS.findall(text.casefold()))


def clean_topic(topic: str) -> str:
    """A proposed topic with spaces collapsed and wrapping quotes and end punctuation removed."""
    return " ".join(topic.split()).strip(" '\"`“”").rstrip(".,:")


def noun_phrase_problem(topic: str) -> str | None:
    """Why ``topic`` is not a meaningful noun phrase (a clause of a sentence), or None when it is one."""
    words = topic.split()
    if not words:
        return "it is empty"
    if topic.rstrip().endswith("?"):
        return "it is a question, not a topic"
    if _NOT_IN_A_NAME.search(topic) or _STRAY_QUOTE.search(topic):
        return "it has punctuation no topic name has, as a cut-out piece of text does"
    if len(words) > MAX_TOPIC_WORDS:
        return f"it has {len(words)} words, more than a topic name"
    lowered = [w.casefold().strip(",.:()") for w in words]
    if lowered[0] in _BAD_FIRST or lowered[-1] in _BAD_LAST:
        edge = lowered[0] if lowered[0] in _BAD_FIRST else lowered[-1]
        return f"it is a piece of a sentence (it starts or ends with {edge!r})"
    verb = next((w for w in lowered if w in _SENTENCE_WORDS), None)
    if verb:
        return f"it is a piece of a sentence (it has {verb!r})"
    if not any(w not in STOPWORDS and any(c.isalpha() for c in w) for w in lowered):
        return "it is made of stop words only"
    return None


def names_topic(question: str, topic: str) -> bool:
    """True when ``question`` names ``topic``: all its content words (two thirds of a long topic's)."""
    def stems(text: str) -> set[str]:
        return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in tokenize(text)}

    wanted = stems(topic)
    if not wanted:
        return False
    present = len(wanted & stems(question))
    return present >= (len(wanted) if len(wanted) <= 2 else -(-2 * len(wanted) // 3))


@dataclass(frozen=True)
class TopicDecision:
    """What became of one proposed refusal topic: kept (perhaps with a rewritten question) or dropped, and why."""

    topic: str
    question: str
    kept: bool
    reason: str = ""
    rewritten_from: str | None = None


@dataclass
class RefusalTopicFilter:
    """Keeps only proposed refusal topics that are real neighbours of the corpus.

    A topic is kept when it is a meaningful noun phrase, not a piece of the prompt the model
    was sent, not a document's path, file name, title or heading, not taken by another
    refusal, and absent from both the chunks and the documents' titles; its question must
    name it and not ask about what the corpus covers, or it is rewritten from the topic.
    """

    index: CorpusIndex
    title_index: CorpusIndex
    names: dict[str, str] = field(default_factory=dict)
    absent_cache: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def build(cls, index: CorpusIndex, documents: Sequence[Document], chunks: Sequence[Chunk]) -> RefusalTopicFilter:
        """A filter over ``documents`` and their ``chunks`` (``index`` is their chunk index)."""
        names: dict[str, str] = {}

        def name(text: str, what: str) -> None:
            words = _name_words(text)
            if words:
                names.setdefault(words, what)

        title_chunks = []
        for document in documents:
            base = document.path.rsplit("/", 1)[-1]
            name(document.path, f"the path of {document.path}")
            name(base, f"the file name of {document.path}")
            name(base.rsplit(".", 1)[0], f"the file name of {document.path}")
            if document.title:
                name(document.title, f"the title of {document.path}")
                name(heading_text(document.title), f"the title of {document.path}")
            text = " ".join([document.title, base.rsplit(".", 1)[0].replace("-", " ").replace("_", " ")])
            title_chunks.append(Chunk(id=document.id or 0, document_id=document.id, ordinal=0, text=text, start=0,
                                      end=len(text)))
        for chunk in chunks:
            for heading in chunk.heading_path:
                name(heading_text(heading), f"a heading of {chunk.heading_path[0]}")
        return cls(index, CorpusIndex.build(title_chunks), names)

    def absent(self, text: str) -> bool:
        """True when neither the chunks nor the titles cover ``text``; remembered per text."""
        found = self.absent_cache.get(text)
        if found is None:
            found = self.absent_cache[text] = self.index.is_absent(text) and self.title_index.is_absent(text)
        return found

    def unseen_name(self, topic: str) -> str | None:
        """A proper name in ``topic`` ("OAuth", "Sentry" in "Sentry error grouping") no document uses, or None.

        A name is a word with a capital inside it or a digit, or a capitalised word beside a
        lower-case one (a Title Cased topic says nothing by its capitals).
        """
        words = [w.strip(",.:()") for w in topic.split()]
        lower_beside = any(w.isalpha() and w.islower() for w in words)
        for word in words:
            inner_capital = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
            name = inner_capital or (word[:1].isupper() and word[1:].islower() and lower_beside) or (
                any(c.isdigit() for c in word) and any(c.isalpha() for c in word))
            terms = tokenize(word)
            if name and terms and all(t not in self.index.postings and t not in self.title_index.postings for t in terms):
                return word
        return None

    def topic_problem(self, topic: str, prompt: str, taken: Iterable[str] = ()) -> str | None:
        """Why ``topic`` cannot be a refusal topic (``prompt``: the instructions the model was sent), or None."""
        problem = noun_phrase_problem(topic)
        if problem:
            return f"not a topic name: {problem}"
        words = _name_words(topic)
        if words in {_name_words(t) for t in taken}:
            return "already taken (by another refusal, or proposed twice)"
        if _PATH_LIKE.search(topic):
            return "a file name or path, not a topic"
        padded = f" {words} "
        for known, what in self.names.items():
            if padded in f" {known} ":
                return f"{what}, so the documents cover it"
        if padded in f" {_name_words(prompt)} ":
            return "a piece of the prompt sent to the model, not a topic it proposed"
        if self.unseen_name(topic):
            return None  # a product or project the documents never name: its topic is not theirs
        if not self.index.is_absent(topic):
            return "covered by the documents (a search over their chunks finds it)"
        if not self.title_index.is_absent(topic):
            return "covered by the documents (their titles name it)"
        return None

    def decide(self, topic: str, question: str, prompt: str, *, taken: Iterable[str] = (), variant: int = 0) -> TopicDecision:
        """Keep or drop one proposal; a kept topic's question names it and asks nothing the corpus covers."""
        topic = clean_topic(topic)
        question = " ".join(question.split())
        problem = self.topic_problem(topic, prompt, taken)
        if problem:
            return TopicDecision(topic, question, False, problem)
        if names_topic(question, topic) and self.absent(question):
            return TopicDecision(topic, question, True)
        why = ("the question asked about something else" if not names_topic(question, topic)
               else "the question also asked about what the documents cover")
        for shift in range(len(QUESTION_FORMS)):
            rewritten = question_for(topic, variant + shift)
            if self.absent(rewritten):
                return TopicDecision(topic, rewritten, True, f"{why}; asked again from the topic", question)
        return TopicDecision(topic, question, False, f"{why}, and every question about it matches the documents")


def follow_up_prompt(prompt: str, rejected: Sequence[str]) -> str:
    """The refusal prompt asked again, with the topics already taken or invalid listed."""
    return prompt.rstrip() + "\n\n" + TAKEN_LINE.format(topics="; ".join(rejected))


REFUSAL_SOURCE_LABELS = {
    "model": "from model-proposed neighbouring topics",
    "fallback": "from the built-in fallback list",
    "unrecorded": "made before topic sources were recorded",
}


def describe_refusal_sources(sources: Mapping[str, int]) -> str:
    """One line on where refusal topics came from ("12 from model-proposed ..., 48 from the built-in fallback list")."""
    counts = {"model": sources.get("model", 0), "fallback": sources.get("fallback", 0)}
    counts.update({k: v for k, v in sources.items() if k not in counts and v})
    total = sum(counts.values())
    parts = [f"{n} {REFUSAL_SOURCE_LABELS.get(k, k)}" for k, n in counts.items()]
    return f"{total} refusal(s): " + ", ".join(parts)


__all__ = [
    "GENERIC_ADJACENT_TOPICS",
    "PROPOSAL_ROUNDS",
    "QUESTION_FORMS",
    "REFUSAL_SOURCE_LABELS",
    "TAKEN_LINE",
    "RefusalTopicFilter",
    "TopicDecision",
    "absent_generic_topics",
    "clean_topic",
    "corpus_overview",
    "describe_refusal_sources",
    "follow_up_prompt",
    "names_topic",
    "noun_phrase_problem",
    "question_for",
    "top_concepts",
]
