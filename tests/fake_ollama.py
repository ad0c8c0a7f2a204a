"""A stand-in Ollama server for tests and benchmarks.

No real Ollama can run on the machines that test this project, so this stdlib
HTTP server speaks enough of Ollama's protocol for the official ``ollama``
client to drive it over real HTTP:

* ``POST /api/chat`` and ``POST /api/generate``: NDJSON streaming (the
  default, as in Ollama) and single JSON answers; ``format`` (a JSON schema or
  ``"json"``) is honoured by a deterministic responder that builds a
  schema-valid answer from the prompt's own text.
* ``GET /api/tags``, ``POST /api/show``, ``GET /api/version``, ``GET /api/ps``.
* ``POST /api/embed`` (and the OpenAI-style ``POST /v1/embeddings``): a stand-in
  embedding, not a model's (see :func:`stand_in_embedding`: a hashed bag of word
  stems, so texts are close when they share content words, never by meaning).
  Only models with "embed" in their name make embeddings; others get Ollama's
  400 ``"<model>" does not support embeddings``.
* The OpenAI-compatible routes Ollama also serves: ``POST /v1/chat/completions``
  (SSE streaming and not, ``response_format`` with a JSON schema) and
  ``GET /v1/models``.
* Ollama's error bodies: ``{"error": "..."}`` with its status codes (OpenAI
  routes use ``{"error": {"message": ...}}``).

Faults can be switched at run time, thread-safely, through :class:`Faults`
(see :meth:`FakeOllama.set_fault`). Every request is recorded for assertions
and the peak number of requests served at once is tracked.

Use it as a context manager, through the :func:`fake_ollama` fixture helper,
or standalone::

    python tests/fake_ollama.py --port 11434 --latency 0.2 --parallel 4
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_MODELS",
    "NEIGHBOUR_TOPICS",
    "FakeOllama",
    "Faults",
    "RecordedRequest",
    "Responder",
    "build_answer",
    "eval_responder",
    "fake_ollama",
    "refusal_responder",
    "schema_answer",
    "stand_in_embedding",
]

DEFAULT_MODELS = ["llama3.2:3b", "qwen2.5:7b"]
FAKE_VERSION = "0.12.6"

Responder = Callable[[dict[str, Any]], "str | dict[str, Any] | list[Any]"]

# Ollama's own wordings for the faults this server can imitate.
MSG_NOT_FOUND = "model '{model}' not found"
MSG_RUNNER_DIED = "llama runner process has terminated: exit status 2"
MSG_BUSY = "server busy, please try again.  maximum pending requests exceeded"
# What an Ollama without JSON-schema formats (before 0.5) answers to ``format={...}``.
MSG_NO_FORMAT = (
    "json: cannot unmarshal object into Go struct field ChatRequest.format of type string"
)


@dataclass
class Faults:
    """Switchable failures. Set them through :meth:`FakeOllama.set_fault` (thread-safe).

    * ``refuse``: the port stops accepting connections (connection refused), and
      open keep-alive connections are closed; clearing it listens again on the same port.
    * ``model_404``: model routes answer 404 ``model 'x' not found``.
    * ``http_500``: model routes answer 500 with a runner-crash message.
    * ``slow``: model routes wait ``slow_s`` seconds before answering
      (longer than a client's short timeout).
    * ``truncated_stream``: a streamed answer stops half-way and the connection is
      cut, without the final ``done`` line; a single answer is cut mid-body.
    * ``invalid_json``: the answer content is chatty prose, not JSON.
    * ``length``: ``done_reason`` is ``"length"`` and the JSON answer is cut in half.
    * ``no_format_support``: a request with a JSON-schema ``format`` gets the 400 an
      Ollama too old for structured output answers.
    * ``fail_next``: the next N model requests get ``fail_status`` (500, or 503 busy),
      then the server recovers, for retry tests.
    * ``token_delay_s``: a slow CPU: each streamed piece comes this many seconds after the
      previous one; a single (not streamed) answer comes after all of them together.
    * ``stall``: a streamed answer sends half its pieces, then stays silent for ``slow_s``
      seconds before the rest (a stuck model runner); a single answer waits ``slow_s``.
    """

    refuse: bool = False
    model_404: bool = False
    http_500: bool = False
    slow: bool = False
    slow_s: float = 30.0
    truncated_stream: bool = False
    invalid_json: bool = False
    length: bool = False
    no_format_support: bool = False
    fail_next: int = 0
    fail_status: int = 500
    token_delay_s: float = 0.0
    stall: bool = False


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    body: Any
    at: float = field(default_factory=time.monotonic)


# --- the deterministic responder ---------------------------------------------------

_QUESTION_HINTS = ("question", "instruction", "prompt", "query", "ask", "topic", "request")
_ANSWER_HINTS = (
    "answer",
    "response",
    "output",
    "explanation",
    "reasoning",
    "completion",
    "content",
    "body",
)
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]?")
_LABEL_RE = re.compile(r"^(?:[A-Z][A-Za-z ]{0,20}:\s+)+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "as",
        "by",
        "at",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "their",
        "there",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "why",
        "can",
        "could",
        "should",
        "would",
        "will",
        "may",
        "might",
        "not",
        "no",
        "yes",
        "you",
        "your",
        "we",
        "our",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "into",
        "about",
        "than",
        "then",
        "so",
        "such",
        "also",
        "only",
        "each",
        "any",
        "all",
        "more",
        "most",
        "other",
        "some",
        "one",
        "two",
        "use",
        "used",
        "using",
        "write",
        "json",
        "answer",
        "question",
        "following",
        "given",
        "pair",
        "pairs",
        "text",
        "passage",
        "source",
        "chunk",
        "document",
    ]
)
_REWORDINGS = (
    ("is not", "isn't"),
    ("can not", "cannot"),
    ("in order to", "to"),
    ("utilize", "use"),
)
_LEADS = ("In short, ", "Put simply, ", "", "Concretely, ", "")


def _prompt_text(request: dict[str, Any]) -> str:
    """All the text the model was given, user messages last (they carry the source)."""
    parts: list[str] = []
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
    if not parts:  # a raw /api/generate body, not yet normalised into messages
        for key in ("system", "prompt"):
            if isinstance(request.get(key), str):
                parts.append(request[key])
    return "\n".join(parts)


_FENCED_SOURCE_RE = re.compile(r"<<<\n?(.*?)\n?>>>", re.DOTALL)
_INSTRUCTION_RE = re.compile(
    r"\b(json|write|generate|return|respond|format|produce|output)\b", re.IGNORECASE
)


def _source_sentences(text: str) -> list[str]:
    """Sentences of the source passage, leaving out the prompt's own instructions when possible."""
    sentences: list[str] = []
    for raw in _SENTENCE_RE.findall(text):
        sentence = _LABEL_RE.sub("", " ".join(raw.split()))
        if len(sentence.split()) >= 4 and not sentence.startswith(("{", "[", "#", "-", "`")):
            sentence = sentence if sentence[-1] in ".!?" else sentence + "."
            if sentence not in sentences:
                sentences.append(sentence)
    content = [s for s in sentences if not _INSTRUCTION_RE.search(s)]
    return content or sentences or ["The source text describes the topic in a few words."]


def _keywords(text: str) -> list[str]:
    """Content words, most frequent first (ties in order of appearance)."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for word in _WORD_RE.findall(text):
        lowered = word.lower()
        if len(lowered) > 3 and lowered not in _STOP:
            counts[lowered] = counts.get(lowered, 0) + 1
            first.setdefault(lowered, word)
    ranked = sorted(counts, key=lambda w: -counts[w])  # stable: ties keep their order
    return [first[w] for w in ranked] or ["the topic"]


class _Composer:
    """Builds schema-valid values from one prompt, deterministically."""

    def __init__(self, request: dict[str, Any]) -> None:
        text = _prompt_text(request)
        # The source passage travels in user messages; the system prompt is instructions.
        user = "\n".join(
            m["content"]
            for m in request.get("messages") or []
            if m.get("role") == "user" and isinstance(m.get("content"), str)
        )
        # A prompt that fences its source passage (<<< ... >>>) is answered from the passage alone, as a
        # model would: echoing the prompt's own instructions is a leak the quality gate flags.
        fenced = _FENCED_SOURCE_RE.findall(user)
        if fenced:
            user = "\n".join(fenced)
        self.sentences = _source_sentences(user or text)
        self.keywords = _keywords(user or text)
        self.seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        self.counter = 0

    def _pick(self, items: list[str], offset: int = 0) -> str:
        return items[(self.seed + self.counter + offset) % len(items)]

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def question(self) -> str:
        self._next()
        top = self.keywords[:6]
        first = self._pick(top)
        second = self._pick(top, 1) if len(top) > 1 else "it"
        templates = (
            "How do {a} and {b} fit together?",
            "What should I know about {a} when dealing with {b}?",
            "Why does {a} matter for {b}?",
            "Can you explain {a} and {b} step by step?",
        )
        return self._pick(list(templates)).format(a=first, b=second)

    def answer(self) -> str:
        wanted = 2 + (self.seed + self._next()) % 3
        start = (self.seed + self.counter) % len(self.sentences)
        count = min(wanted, len(self.sentences))
        chosen = [self.sentences[(start + i) % len(self.sentences)] for i in range(count)]
        if len(chosen) < 2:
            # A one-sentence source still gets a two-sentence answer, without repeating itself.
            a, b = [*self.keywords, "it", "it"][:2]
            chosen.append(f"That is the main point to keep in mind about {a} and {b}.")
        text = " ".join(chosen)
        for old, new in _REWORDINGS:
            text = text.replace(old, new)
        lead = self._pick(list(_LEADS))
        return lead + (text[0].lower() + text[1:] if lead else text)

    def phrase(self) -> str:
        self._next()
        words = self._pick(self.sentences).rstrip(".!?").split()
        start = self.counter % max(1, len(words) - 3)
        return " ".join(words[start : start + 3 + self.counter % 5])

    def string(self, name: str, schema: dict[str, Any]) -> str:
        lowered = name.lower()
        if any(h in lowered for h in _QUESTION_HINTS):
            value = self.question()
        elif any(h in lowered for h in _ANSWER_HINTS):
            value = self.answer()
        else:
            value = self.phrase()
        min_len = int(schema.get("minLength", 0))
        while len(value) < min_len:
            value = f"{value} {self.answer()}"
        max_len = schema.get("maxLength")
        if max_len is not None and len(value) > int(max_len):
            value = value[: int(max_len)].rstrip()
        return value

    def value(self, schema: Any, name: str, root: dict[str, Any], depth: int = 0) -> Any:
        if not isinstance(schema, dict) or depth > 12:
            return self.phrase()
        if "$ref" in schema:
            target = root.get("$defs", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
            return self.value(target, name, root, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            if schema.get(key):
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return self.value(options[0], name, root, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if kind == "object":
            props = schema.get("properties", {})
            return {key: self.value(sub, key, root, depth + 1) for key, sub in props.items()}
        if kind == "array":
            low = int(schema.get("minItems", 1))
            high = int(schema.get("maxItems", max(low, 3)))
            count = max(low, min(high, 1 + (self.seed + self._next()) % 3))
            singular = name[:-1] if name.endswith("s") else name
            return [
                self.value(schema.get("items", {}), singular, root, depth + 1) for _ in range(count)
            ]
        if kind in ("integer", "number"):
            floor = float(_first_number(schema, ("minimum", "exclusiveMinimum"), 0.0))
            ceiling = float(_first_number(schema, ("maximum", "exclusiveMaximum"), floor + 10))
            if "exclusiveMinimum" in schema:
                floor += 1
            if "exclusiveMaximum" in schema:
                ceiling -= 1
            value = min(max(floor, 1.0), ceiling)
            return int(value) if kind == "integer" else float(value)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(name, schema)


def _first_number(schema: dict[str, Any], keys: tuple[str, ...], default: float) -> float:
    for key in keys:
        if isinstance(schema.get(key), (int, float)):
            return float(schema[key])
    return default


def schema_answer(request: dict[str, Any]) -> str | dict[str, Any] | list[Any]:
    """The default responder: a schema-valid answer built from the prompt's text.

    With a JSON-schema ``format`` it returns matching data: question-like string
    fields get a question ending in '?', answer-like ones 2-4 sentences from the
    prompt, lists 1-3 items, numbers within range, enums their first value.
    ``format: "json"`` gives ``{"answer": ...}``; no format gives plain prose.
    """
    composer = _Composer(request)
    fmt = request.get("format")
    if isinstance(fmt, dict):
        return composer.value(fmt, "", fmt)
    if fmt == "json":
        return {"answer": composer.answer()}
    return composer.answer()


# Neighbouring topics of most software manuals, for the refusal responder: (topic, a question naming it).
NEIGHBOUR_TOPICS: tuple[tuple[str, str], ...] = (
    ("Python ctypes bindings", "How do I call a C function from Python with ctypes bindings?"),
    ("SWIG wrapper generation", "Can SWIG wrapper generation produce bindings for my C library?"),
    ("WebAssembly component model", "How does the WebAssembly component model handle imports?"),
    ("gRPC bidirectional streaming", "How do I set up gRPC bidirectional streaming between two services?"),
    ("Rust bindgen", "Can Rust bindgen generate bindings from my header files?"),
    ("JNI native methods", "How do I register JNI native methods from a shared library?"),
    ("CMake toolchain files", "What goes into CMake toolchain files for cross-compiling?"),
    ("Kubernetes pod autoscaling", "How do I tune Kubernetes pod autoscaling thresholds?"),
    ("Prometheus alerting rules", "How should I write Prometheus alerting rules for latency?"),
    ("Apache Kafka consumer rebalancing", "Why does Apache Kafka consumer rebalancing pause my consumers?"),
    ("GraphQL subscription resolvers", "How do GraphQL subscription resolvers push updates?"),
    ("Terraform remote state", "Where should Terraform remote state live for a team?"),
)
_TAKEN_RE = re.compile(r"Already taken or invalid[^:]*:\s*(.*?)\.?\s*$", re.M)


def refusal_responder(neighbours: bool = True) -> Responder:
    """A responder whose refusal-topic proposals mix what a weak model offers.

    For a request whose schema asks for ``candidates`` it proposes pieces of the prompt's
    own instructions, topics the overview lists as covered, a document's file name and,
    with ``neighbours``, real neighbouring topics (skipping those the prompt lists as
    already taken; every third one with a question about another topic). A first request
    sometimes offers no neighbour, so the follow-up request gets used. Any other request
    gets :func:`schema_answer`.
    """

    def respond(request: dict[str, Any]) -> str | dict[str, Any] | list[Any]:
        fmt = request.get("format")
        if not (isinstance(fmt, dict) and "candidates" in (fmt.get("properties") or {})):
            return schema_answer(request)
        messages = request.get("messages") or []
        system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        user = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        seed = int(hashlib.sha256(user.encode()).hexdigest()[:8], 16)
        words = system.split()
        start = seed % max(1, len(words) - 4)
        fragment = " ".join(words[start : start + 4]).strip(".,")
        titles = [line[2:].strip() for line in user.splitlines() if line.startswith("- ")]
        taken_match = _TAKEN_RE.search(user)
        taken = {t.strip().lower() for t in taken_match.group(1).split(";")} if taken_match else set()
        junk = [
            {"topic": fragment or "is complete correct according", "question": f"What about {fragment}?"},
            {"topic": "document says' never", "question": "What does the document say about never?"},
        ]
        if titles:
            title = titles[seed % len(titles)]
            junk.append({"topic": title, "question": f"Can you explain {title} to me?"})
            file_like = [t for t in titles if "." in t and " " not in t]
            if file_like:
                junk.append({"topic": file_like[0], "question": f"What is in {file_like[0]}?"})
        candidates = list(junk)
        follow_up = taken_match is not None and any(
            t not in {n.lower() for n, _ in NEIGHBOUR_TOPICS} for t in taken
        )
        if neighbours and (follow_up or seed % 3):
            free = [i for i, (topic, _) in enumerate(NEIGHBOUR_TOPICS) if topic.lower() not in taken]
            for offset in range(min(len(free), 2 if follow_up else 1)):
                index = free[(seed + offset) % len(free)]
                topic, question = NEIGHBOUR_TOPICS[index]
                if index % 3 == 2:  # a question about a different topic than the one named
                    question = NEIGHBOUR_TOPICS[(index + 1) % len(NEIGHBOUR_TOPICS)][1]
                candidates.append({"topic": topic, "question": question})
        return {"candidates": candidates[:10]}

    return respond


EMBEDDING_DIMS = 256
_STEM_ENDINGS = ("ies", "ing", "ed", "es", "s")


def _stem(word: str) -> str:
    """A crude stem: "retries" -> "retr", "retrying" -> "retry" -> "retr"; short words stay."""
    for ending in _STEM_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            word = word[: -len(ending)]
            break
    return word[:-1] if word.endswith("y") and len(word) > 4 else word


def stand_in_embedding(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """A deterministic, unit-length vector for ``text``; NOT a language model's embedding.

    Each content word (longer than two letters, not in the stand-in's stop list) is cut to a
    crude stem and hashed into one of ``dims`` signed buckets. Two texts are close when they share
    stems ("retry the jobs" ~ "retrying a job"), never because they mean the same thing ("give up
    after three tries" is far from "cap retries at three"): figures measured with it show that the
    embedding pass works end to end, not how well a real model finds duplicates.
    """
    vector = [0.0] * dims
    for word in _WORD_RE.findall(text.lower()):
        if len(word) <= 2 or word in _STOP:
            continue
        digest = hashlib.sha256(_stem(word).encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % dims
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = sum(v * v for v in vector) ** 0.5
    if not norm:
        vector[0], norm = 1.0, 1.0  # a text of stop words only: one fixed direction
    return [round(v / norm, 6) for v in vector]


def build_answer(request: dict[str, Any], responder: Responder | None = None) -> str:
    """Run ``responder`` (default :func:`schema_answer`) and return the answer as text."""
    result = (responder or schema_answer)(request)
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def _word_count(text: str) -> int:
    return len(text.split())


def _stream_pieces(text: str) -> list[str]:
    """Split an answer the way a model streams it: a word and its trailing space per piece."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _model_entry(name: str) -> dict[str, Any]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    family = name.split(":")[0].rstrip("0123456789.") or "llama"
    size_tag = name.split(":")[1] if ":" in name else "latest"
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": 2_000_000_000 + int(digest[:6], 16),
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": size_tag.upper() if size_tag[:1].isdigit() else "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


# --- the server ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as Ollama does
    # Headers and body go out in separate writes; with Nagle's algorithm on, the
    # client's delayed ACK would add about 40 ms to every answer.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._track(self.connection, add=False)

    def do_GET(self) -> None:
        self.server.fake._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._dispatch(self, "POST")

    def do_HEAD(self) -> None:
        self.server.fake._dispatch(self, "HEAD")

    # --- writing helpers ---

    def send_json(self, status: int, payload: Any) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def send_body(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut_connection(self) -> None:
        """Drop the connection abruptly, as a crashing server would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


class FairSlots:
    """``count`` slots handed out in arrival order, as Ollama's request queue does.

    A plain semaphore lets a request that just arrived take a freed slot before one that
    has waited, so some requests wait many rounds; Ollama serves its queue in order.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    def acquire(self, stopping: threading.Event) -> bool:
        """Wait for a slot in turn; False if ``stopping`` was set meanwhile."""
        me = object()
        with self._cond:
            self._queue.append(me)
            try:
                while not (self._free > 0 and self._queue[0] is me):
                    if stopping.is_set():
                        return False
                    self._cond.wait(0.1)
                self._free -= 1
                return True
            finally:
                self._queue.remove(me)
                self._cond.notify_all()

    def release(self) -> None:
        """Give a slot back to the next request in line."""
        with self._cond:
            self._free += 1
            self._cond.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close joins handler threads: nothing leaks
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeOllama) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class FakeOllama:
    """A local Ollama look-alike on 127.0.0.1 (a random port unless ``port`` is given).

    ``models`` are the "pulled" models; ``latency`` seconds are slept per model
    request; ``parallel`` caps how many model requests are served at once
    (more wait, like Ollama's ``OLLAMA_NUM_PARALLEL``); ``responder`` maps a
    request body (with ``messages`` and ``format`` normalised for every route)
    to the answer, text or JSON-able data.
    """

    def __init__(
        self,
        models: list[str] | None = None,
        *,
        latency: float = 0.0,
        parallel: int | None = None,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        self.models = list(models if models is not None else DEFAULT_MODELS)
        self.latency = latency
        self.parallel = parallel
        self.responder = responder
        self.verbose = verbose
        self._bind_host = host
        self._port = port
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.peak_concurrency = 0
        self._active = 0
        self._lock = threading.Lock()
        self._slots = FairSlots(parallel) if parallel else None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    @property
    def port(self) -> int:
        """The TCP port the server listens on (fixed after the first start)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give a client, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self._bind_host}:{self._port}"

    def start(self) -> FakeOllama:
        """Start listening in a background thread; returns ``self``."""
        self._stopping.clear()
        self._listen()
        return self

    def _listen(self) -> None:
        httpd = _HTTPServer((self._bind_host, self._port), self)
        self._port = httpd.server_address[1]
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-ollama-{self._port}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()

    def _unlisten(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        # Close keep-alive connections so their handler threads end and clients
        # cannot reuse a pooled connection to a "dead" server.
        self._close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and join every thread."""
        self._stopping.set()
        self._unlisten()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _close_connections(self) -> None:
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # --- faults and observations ---

    def set_fault(self, name: str, value: Any = True) -> None:
        """Switch a fault on (or set its value); see :class:`Faults` for the names."""
        if not hasattr(self.faults, name):
            raise ValueError(f"Unknown fault {name!r}")
        with self._lock:
            setattr(self.faults, name, value)
        if name == "refuse":
            if value and self._httpd is not None:
                self._unlisten()
            elif not value and self._httpd is None and not self._stopping.is_set():
                self._listen()

    def clear_faults(self) -> None:
        """Switch every fault off (and listen again if connections were refused)."""
        self.set_fault("refuse", False)
        with self._lock:
            self.faults = Faults()

    def fail_next(self, count: int, status: int = 500) -> None:
        """Fail the next ``count`` model requests with ``status``, then recover."""
        with self._lock:
            self.faults.fail_next = count
            self.faults.fail_status = status

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset_stats(self) -> None:
        """Forget recorded requests and the concurrency peak."""
        with self._lock:
            self.requests.clear()
            self.peak_concurrency = 0

    # --- request handling ---

    def _dispatch(self, h: _Handler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        body: Any = None
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            raw = h.rfile.read(length)
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                h.send_json(400, {"error": "invalid character in request body"})
                return
        with self._lock:
            self.requests.append(RecordedRequest(method, path, body))
        openai = path.startswith("/v1/")
        routes: dict[tuple[str, str], Callable[[_Handler, Any], None]] = {
            ("GET", "/"): lambda hh, _b: self._plain(hh, "Ollama is running"),
            ("HEAD", "/"): lambda hh, _b: self._plain(hh, ""),
            ("GET", "/api/version"): lambda hh, _b: hh.send_json(200, {"version": FAKE_VERSION}),
            ("GET", "/api/tags"): lambda hh, _b: hh.send_json(
                200, {"models": [_model_entry(m) for m in self.models]}
            ),
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/chat"): self._model_route,
            ("POST", "/api/generate"): self._model_route,
            ("POST", "/v1/chat/completions"): self._model_route,
            ("POST", "/api/embed"): self._model_route,
            ("POST", "/v1/embeddings"): self._model_route,
            ("GET", "/v1/models"): self._v1_models,
        }
        handler = routes.get((method, path))
        if handler is None:
            if openai:
                self._error(h, 404, "404 page not found", openai=True)
            else:
                self._plain(h, "404 page not found", 404)  # gin's own plain-text 404
            return
        if body is not None and not isinstance(body, dict):
            self._error(h, 400, "request body must be a JSON object", openai=openai)
            return
        handler(h, body or {})

    def _plain(self, h: _Handler, text: str, status: int = 200) -> None:
        h.send_body(status, text.encode(), "text/plain; charset=utf-8")

    def _error(self, h: _Handler, status: int, message: str, *, openai: bool = False) -> None:
        if openai:
            kind = "invalid_request_error" if status < 500 else "api_error"
            h.send_json(
                status, {"error": {"message": message, "type": kind, "param": None, "code": None}}
            )
        else:
            h.send_json(status, {"error": message})

    def _known(self, name: str) -> bool:
        canonical = name if ":" in name else f"{name}:latest"
        return name in self.models or canonical in self.models

    def _show(self, h: _Handler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        if self.faults.model_404 or not self._known(name):
            self._error(h, 404, MSG_NOT_FOUND.format(model=name))
            return
        entry = _model_entry(name)
        h.send_json(
            200,
            {
                "modelfile": f"FROM {name}\n",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": {
                    "general.architecture": entry["details"]["family"],
                    "general.parameter_count": 3212749888,
                },
                "capabilities": ["completion", "tools"],
                "modified_at": entry["modified_at"],
            },
        )

    def _ps(self, h: _Handler, _body: dict[str, Any]) -> None:
        models = [
            dict(_model_entry(m), expires_at="2099-01-01T00:00:00Z", size_vram=0)
            for m in self.models[:1]
        ]
        h.send_json(200, {"models": models})

    def _v1_models(self, h: _Handler, _body: dict[str, Any]) -> None:
        data = [
            {"id": m, "object": "model", "created": 1735689600, "owned_by": "library"}
            for m in self.models
        ]
        h.send_json(200, {"object": "list", "data": data})

    def _wait(self, seconds: float) -> bool:
        """Sleep, but wake at once when the server stops; True if it is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _model_route(self, h: _Handler, body: dict[str, Any]) -> None:
        # Requests beyond the parallelism wait for a slot in turn, as on a busy Ollama.
        if self._slots is not None and not self._slots.acquire(self._stopping):
            return
        with self._lock:
            self._active += 1
            self.peak_concurrency = max(self.peak_concurrency, self._active)
        try:
            self._serve_model(h, body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True  # the client gave up (e.g. its timeout); nothing to answer
        finally:
            with self._lock:
                self._active -= 1
            if self._slots is not None:
                self._slots.release()

    def _serve_model(self, h: _Handler, body: dict[str, Any]) -> None:
        path = h.path.split("?", 1)[0]
        openai = path.startswith("/v1/")
        model = str(body.get("model") or "")
        with self._lock:
            faults = Faults(**vars(self.faults))
            if self.faults.fail_next > 0:
                self.faults.fail_next -= 1
        if faults.slow and self._wait(faults.slow_s):
            return
        if faults.fail_next > 0:
            message = MSG_BUSY if faults.fail_status == 503 else MSG_RUNNER_DIED
            self._error(h, faults.fail_status, message, openai=openai)
            return
        if faults.http_500:
            self._error(h, 500, MSG_RUNNER_DIED, openai=openai)
            return
        if not model:
            self._error(h, 400, "model is required", openai=openai)
            return
        if faults.model_404 or not self._known(model):
            self._error(h, 404, MSG_NOT_FOUND.format(model=model), openai=openai)
            return
        if path in ("/api/embed", "/v1/embeddings"):
            self._answer_embed(h, model, body, openai=openai)
            return
        request = self._normalise(path, body)
        if faults.no_format_support and isinstance(request.get("format"), dict):
            wording = (
                MSG_NO_FORMAT
                if path != "/api/generate"
                else MSG_NO_FORMAT.replace("Chat", "Generate")
            )
            self._error(h, 400, wording, openai=openai)
            return
        if self._wait(self.latency):
            return
        content = build_answer(request, self.responder)
        done_reason = "stop"
        if faults.invalid_json:
            content = (
                "Sure! Here is the pair you asked for: question - what is it, answer - it depends."
            )
        if faults.length:
            content = content[: max(1, len(content) // 2)]
            done_reason = "length"
        prompt_tokens = _word_count(_prompt_text(request))
        stream = bool(body.get("stream", not openai))  # Ollama streams unless told not to
        if openai:
            self._answer_openai(h, model, content, done_reason, prompt_tokens, stream, faults, body)
        else:
            self._answer_ollama(h, path, model, content, done_reason, prompt_tokens, stream, faults)

    def _answer_embed(self, h: _Handler, model: str, body: dict[str, Any], *, openai: bool) -> None:
        """Stand-in embeddings of ``input`` (one text or a list), in Ollama's or OpenAI's shape."""
        if "embed" not in model:
            self._error(h, 400, f'"{model}" does not support embeddings', openai=openai)
            return
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._error(h, 400, "invalid input type", openai=openai)
            return
        if self._wait(self.latency):
            return
        vectors = [stand_in_embedding(t) for t in texts]
        tokens = sum(_word_count(t) for t in texts)
        if openai:
            data = [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)]
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            h.send_json(200, {"object": "list", "data": data, "model": model, "usage": usage})
            return
        h.send_json(
            200,
            {"model": model, "embeddings": vectors, "total_duration": 1_000_000, "load_duration": 1_000_000,
             "prompt_eval_count": tokens},
        )

    def _pace(self, faults: Faults, index: int, count: int) -> bool:
        """Wait before streamed piece ``index`` as the slow and stall faults say; True if the server is stopping."""
        wait = faults.token_delay_s if index else 0.0
        if faults.stall and index == count // 2:
            wait += faults.slow_s
        return self._wait(wait)

    @staticmethod
    def _normalise(path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Give responders the same shape for every route: ``messages`` and ``format``."""
        request = dict(body)
        if path == "/api/generate":
            messages = []
            if body.get("system"):
                messages.append({"role": "system", "content": body["system"]})
            messages.append({"role": "user", "content": str(body.get("prompt") or "")})
            request["messages"] = messages
        if path == "/v1/chat/completions":
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema":
                request["format"] = (fmt.get("json_schema") or {}).get("schema") or {}
            elif fmt.get("type") == "json_object":
                request["format"] = "json"
        return request

    def _answer_ollama(
        self,
        h: _Handler,
        path: str,
        model: str,
        content: str,
        done_reason: str,
        prompt_tokens: int,
        stream: bool,
        faults: Faults,
    ) -> None:
        chat = path == "/api/chat"
        eval_count = _word_count(content)
        final: dict[str, Any] = {
            "model": model,
            "created_at": _now(),
            "done": True,
            "done_reason": done_reason,
            "total_duration": int(self.latency * 1e9) + 1_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 1_000_000,
            "eval_count": eval_count,
            "eval_duration": int(self.latency * 1e9) + 1_000_000,
        }
        pieces = _stream_pieces(content)
        if not stream:
            if self._wait(faults.token_delay_s * len(pieces) + (faults.slow_s if faults.stall else 0.0)):
                return
            payload = dict(final)
            if chat:
                payload["message"] = {"role": "assistant", "content": content}
            else:
                payload["response"] = content
            if faults.truncated_stream:
                data = json.dumps(payload).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json; charset=utf-8")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data[: len(data) // 2])
                h.cut_connection()
                return
            h.send_json(200, payload)
            return
        h.start_chunked("application/x-ndjson")
        if faults.truncated_stream:
            pieces = pieces[: max(1, len(pieces) // 2)]
        for i, piece in enumerate(pieces):
            if self._pace(faults, i, len(pieces)):
                return
            part: dict[str, Any] = {"model": model, "created_at": _now(), "done": False}
            if chat:
                part["message"] = {"role": "assistant", "content": piece}
            else:
                part["response"] = piece
            h.write_chunk(json.dumps(part).encode() + b"\n")
        if faults.truncated_stream:
            h.cut_connection()  # no final line and no terminating chunk
            return
        if chat:
            final["message"] = {"role": "assistant", "content": ""}
        else:
            final["response"] = ""
        h.write_chunk(json.dumps(final).encode() + b"\n")
        h.end_chunked()

    def _answer_openai(
        self,
        h: _Handler,
        model: str,
        content: str,
        done_reason: str,
        prompt_tokens: int,
        stream: bool,
        faults: Faults,
        body: dict[str, Any],
    ) -> None:
        completion_tokens = _word_count(content)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        ident = "chatcmpl-" + hashlib.sha256(content.encode()).hexdigest()[:12]
        created = int(time.time())
        pieces = _stream_pieces(content)
        if not stream:
            if self._wait(faults.token_delay_s * len(pieces) + (faults.slow_s if faults.stall else 0.0)):
                return
            h.send_json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": done_reason,
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        h.start_chunked("text/event-stream")

        def event(delta: dict[str, Any], finish: str | None, with_usage: bool = False) -> None:
            chunk: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                chunk["choices"] = []
                chunk["usage"] = usage
            h.write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())

        if faults.truncated_stream:
            pieces = pieces[: max(1, len(pieces) // 2)]
        event({"role": "assistant", "content": ""}, None)
        for i, piece in enumerate(pieces):
            if self._pace(faults, i, len(pieces)):
                return
            event({"content": piece}, None)
        if faults.truncated_stream:
            h.cut_connection()
            return
        event({}, done_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            event({}, None, with_usage=True)
        h.write_chunk(b"data: [DONE]\n\n")
        h.end_chunked()


@contextlib.contextmanager
def fake_ollama(**kwargs: Any) -> Iterator[FakeOllama]:
    """Run a :class:`FakeOllama` for the duration of a ``with`` block or a pytest fixture.

    In a test module::

        @pytest.fixture
        def server():
            with fake_ollama(latency=0.0) as srv:
                yield srv
    """
    server = FakeOllama(**kwargs)
    with server:
        yield server


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (for manual trials in tmux and for benchmarks)."""
    parser = argparse.ArgumentParser(
        description="A stand-in Ollama server speaking its HTTP protocol."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds slept per model request"
    )
    parser.add_argument("--parallel", type=int, default=None, help="model requests served at once")
    parser.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="comma-separated pulled models"
    )
    parser.add_argument(
        "--fault", action="append", default=[], help="a fault to switch on (repeatable)"
    )
    parser.add_argument(
        "--refusal-topics",
        choices=("echo", "mixed", "junk"),
        default="echo",
        help="refusal-topic proposals: built from the prompt (echo), weak-model junk with real "
        "neighbouring topics (mixed), or junk only (junk)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = FakeOllama(
        [m for m in args.models.split(",") if m],
        latency=args.latency,
        parallel=args.parallel,
        responder=None
        if args.refusal_topics == "echo"
        else refusal_responder(neighbours=args.refusal_topics == "mixed"),
        host=args.host,
        port=args.port,
        verbose=args.verbose,
    )
    for fault in args.fault:
        server.set_fault(fault)
    with server:
        print(
            f"fake Ollama listening on {server.url} (latency {args.latency}s, parallel {args.parallel})",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()


# --- eval modes: a model under test that recites the corpus, and one that behaves -----------

_EVAL_FORM_WORDS = frozenset((
    "started", "start", "explain", "best", "practice", "stuck", "walk", "through", "recommend", "quick",
    "question", "guide", "somewhere", "here", "work", "does", "what", "should", "know", "about", "could",
    "would", "please", "tell",
))
_EVAL_REFERENT_WORDS = frozenset(("it", "that", "this", "one", "value", "limit"))


def _eval_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(text) if len(w) > 3 and w.lower() not in _STOP]


def eval_responder(passages: list[str], *, mimic_models: tuple[str, ...] = ("mimic",)) -> Responder:
    """Answers for eval tests, by model: a mimic recites corpus passages, any other model behaves.

    Requests with a JSON-schema ``format`` are the eval's helpers: a paraphrase request
    (``questions``) gets two rewordings that keep the question's words, an agreement request
    (``score``) a high score when the answer shares the reference's words, anything else the
    default schema answer. A plain chat request is the model under test:

    * a model whose name starts with one of ``mimic_models`` answers every question with the
      passage sharing the most words with it, verbatim, and never declines;
    * any other model declines a question whose subject words the passages do not hold, asks
      back on a question with no subject ("How do I set it up?"), and answers the rest in its
      own words (the best passage's key terms in new sentences, no run of its wording).
    """
    vocabulary = {w for text in passages for w in _eval_words(text)}
    indexed = [(text, set(_eval_words(text))) for text in passages]

    def best_passage(question: str) -> str:
        wanted = set(_eval_words(question))
        return max(indexed, key=lambda item: len(wanted & item[1]))[0] if indexed else question

    def respond(request: dict[str, Any]) -> str | dict[str, Any] | list[Any]:
        fmt = request.get("format")
        user = [m["content"] for m in request.get("messages") or [] if m.get("role") == "user"]
        prompt = user[-1] if user else ""
        if isinstance(fmt, dict):
            props = fmt.get("properties") or {}
            if "questions" in props:
                question = prompt.rsplit("Question:\n", 1)[-1].strip().rstrip("?")
                return {"questions": [f"Could you tell me {question[:1].lower()}{question[1:]}?",
                                      f"I would like to know: {question}?"]}
            if "score" in props:
                reference = prompt.split("Reference answer:\n", 1)[-1].split("\n\nModel's answer:", 1)[0]
                answer = prompt.split("Model's answer:\n", 1)[-1]
                shared = set(_eval_words(reference)) & set(_eval_words(answer))
                return {"score": 8 if len(shared) >= 3 else 2, "reason": f"{len(shared)} terms shared."}
            return schema_answer(request)
        model = str(request.get("model") or "")
        if model.startswith(mimic_models):
            return best_passage(prompt)
        subject = [w for w in _eval_words(prompt) if w not in _EVAL_FORM_WORDS]
        words = [w.lower() for w in _WORD_RE.findall(prompt)]
        if len(words) <= 7 and set(words) & _EVAL_REFERENT_WORDS:
            return "Which part do you mean? Could you say what you are setting up, so I can answer for that?"
        if not subject or sum(w in vocabulary for w in subject) / len(subject) < 0.5:
            return ("That isn't covered in the documentation I was trained on, so I can't answer it reliably; "
                    "ask me about the system it describes instead.")
        terms = [w for w in _keywords(best_passage(prompt)) if w.lower() not in _STOP][:6]
        terms += ["it"] * (6 - len(terms))
        return (f"Briefly: {terms[0]} goes together with {terms[1]}. In practice you set {terms[2]} first, "
                f"then {terms[3]} follows; {terms[4]} and {terms[5]} matter when something goes wrong.")

    return respond
