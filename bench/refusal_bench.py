"""Refusal benchmark: which proposed refusal topics the filter drops, and how varied refusal answers are.

    python bench/refusal_bench.py              # caught / false-alarm rates, then two generated runs per corpus
    python bench/refusal_bench.py --misses     # also list every miss and false alarm

Part 1, labeled topics over two real corpora, ``sample_docs/`` (the Tidewater job queue) and libffi's
HTML manual (``tests/data/libffi-manual``), imported with the project's own loaders:

- bad topics: pieces of the prompts each built-in pack sends (every 2- to 5-word run of its
  instructions, sampled), pieces of sentences and stop words, documents' file names, paths,
  titles and headings, and topics the documents cover (hand-labeled);
- clean topics: real neighbouring topics, including hard ones that share a word with the
  corpus ("Java Native Interface" beside "foreign function interface").

Caught: a bad topic is dropped. False alarm: a clean topic is dropped. ``dev`` cases were
written alongside the filter (and one rule, proper names the documents never use, was added
after seeing them); ``held_out`` ones after that, reported as they fall. Prompt pieces and
document names are drawn from the prompts and the documents themselves (counted as held out).

Part 2, refusal pairs generated over real HTTP against ``tests/fake_ollama.py`` (its refusal
responder: a weak model's proposals, junk only or junk with real neighbours): how many
refusals used a model-proposed topic and how many the fallback list, and the largest share of
answers sharing one 3-word phrase beyond their declination template (target <= 25%).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.generate import backends_from_settings, generation_runner  # noqa: E402
from engine.generate.coverage import most_shared_phrase  # noqa: E402
from engine.generate.prompts import load_packs  # noqa: E402
from engine.generate.refusals import TAKEN_LINE, RefusalTopicFilter, describe_refusal_sources  # noqa: E402
from engine.generate.retrieval import CorpusIndex  # noqa: E402
from engine.ingest.importer import import_paths  # noqa: E402
from engine.models import Job, PairKind  # noqa: E402
from engine.resources import sample_docs_dir  # noqa: E402
from engine.store import Store  # noqa: E402
from tests.fake_ollama import FakeOllama, refusal_responder  # noqa: E402

MANUAL = ROOT / "tests" / "data" / "libffi-manual"

# (split, topic) per corpus and label.
SENTENCE_PIECES = [
    ("dev", "is complete correct according"), ("dev", "document says' never"), ("dev", "the and of"),
    ("dev", "it is what"), ("dev", "and so on"), ("dev", "which one of those"),
    ("dev", "because it was"), ("dev", "the other"), ("dev", "more of this"),
    ("dev", "What should I do?"), ("dev", "not covered here"), ("dev", "things that are"),
]
COVERED = {
    "libffi": [
        ("dev", "closures"), ("dev", "calling convention"), ("dev", "variadic functions"), ("dev", "closure trampolines"),
        ("dev", "foreign function interface"), ("dev", "ffi_call"), ("dev", "ffi_prep_cif"),
        ("dev", "struct types"), ("dev", "complex types"), ("dev", "thread safety"),
        ("dev", "multiple ABIs"), ("dev", "primitive types"), ("dev", "ffi_type"),
        ("dev", "return values"), ("dev", "enumerations"), ("dev", "size and alignment"),
        ("dev", "the closure API"), ("dev", "memory usage"), ("dev", "missing features"),
        ("dev", "argument types"),
        ("held_out", "ffi_closure_alloc"), ("held_out", "FFI_DEFAULT_ABI"), ("held_out", "ffi_prep_closure_loc"),
        ("held_out", "struct alignment"), ("held_out", "closure example"), ("held_out", "unions in libffi"),
        ("held_out", "complex number support"), ("held_out", "ffi_arg return type"), ("held_out", "type descriptions"),
        ("held_out", "missing features of libffi"), ("held_out", "libffi thread safety"),
    ],
    "sample_docs": [
        ("dev", "dead-letter queue"), ("dev", "retry policy"), ("dev", "result caching"),
        ("dev", "cache keys"), ("dev", "TTLs"), ("dev", "Go worker"), ("dev", "Python client"),
        ("dev", "broker health"), ("dev", "environment variables"), ("dev", "YAML settings"),
        ("dev", "job lifecycle"), ("dev", "worker protocol"), ("dev", "coalescing concurrent misses"),
        ("dev", "cache invalidation"), ("dev", "job priority"), ("dev", "Tidewater"),
        ("held_out", "dead letters"), ("held_out", "retry backoff"), ("held_out", "cache TTL"),
        ("held_out", "SQLite broker file"), ("held_out", "job results"), ("held_out", "Tidewater configuration file"),
        ("held_out", "cached_job decorator"), ("held_out", "the HTTP API"), ("held_out", "job retries"),
    ],
}
CLEAN = {
    "libffi": [
        ("dev", "Python ctypes bindings"), ("dev", "SWIG wrapper generation"), ("dev", "Rust bindgen"),
        ("dev", "JNI native methods"), ("dev", "CMake toolchain files"), ("dev", "iOS push notifications"),
        ("dev", "dyncall library"), ("dev", "LLVM JIT compilation"), ("dev", "GCC inline assembly"),
        ("dev", "WebAssembly component model"), ("dev", "Java Native Access"),
        ("dev", "Windows COM interop"), ("dev", "Objective-C message sending"), ("dev", "Lua C API"),
        ("dev", "Node.js N-API addons"), ("dev", "CPython extension modules"),
        ("dev", "Go cgo overhead"), ("dev", "Zig C interop"),
        # Hard: a word shared with the manual.
        ("dev", "Java Native Interface"), ("dev", "Python type hints"), ("dev", "Rust memory safety"),
        ("dev", "C++ exception handling"), ("dev", "Android NDK builds"),
        ("held_out", "Haskell FFI imports"), ("held_out", "Swift C interop"), ("held_out", "Perl XS modules"),
        ("held_out", "Ruby FFI gem"), ("held_out", "PyPy cffi"), ("held_out", "glibc dlopen flags"),
        ("held_out", "Clang sanitizers"), ("held_out", "Meson build options"), ("held_out", "Valgrind memcheck"),
        ("held_out", "Debian packaging"),
    ],
    "sample_docs": [
        ("dev", "Kubernetes pod autoscaling"), ("dev", "Prometheus alerting rules"),
        ("dev", "Apache Kafka consumer rebalancing"), ("dev", "RabbitMQ quorum queues"),
        ("dev", "Terraform remote state"), ("dev", "GraphQL subscription resolvers"),
        ("dev", "OAuth token refresh"), ("dev", "Sentry error grouping"), ("dev", "Grafana dashboards"),
        ("dev", "Django ORM migrations"), ("dev", "Celery beat schedules"), ("dev", "Temporal workflows"),
        # Hard: a word shared with the documents.
        ("dev", "AWS SQS visibility timeout"), ("dev", "Nginx reverse proxy caching"),
        ("dev", "Java worker libraries"), ("dev", "Rust async runtimes"),
        ("held_out", "Airflow DAG scheduling"), ("held_out", "Sidekiq retries"), ("held_out", "AWS Lambda concurrency"),
        ("held_out", "Postgres logical replication"), ("held_out", "Consul service discovery"),
        ("held_out", "Vault secret rotation"), ("held_out", "Istio traffic shifting"),
        ("held_out", "Elasticsearch index templates"), ("held_out", "Nomad job specs"), ("held_out", "Jaeger tracing"),
    ],
}


def _import(folder: Path, suffixes: tuple[str, ...] | None) -> Store:
    root = Path(tempfile.mkdtemp(prefix="refusal-bench-"))
    store = Store.init(root / "project")
    if suffixes:
        pages = root / "pages"
        pages.mkdir()
        for path in folder.iterdir():
            if path.suffix in suffixes:
                shutil.copy(path, pages / path.name)
        folder = pages
    import_paths(store, [folder])
    return store


def _instructions(mode: str) -> str:
    pack = load_packs(None)[mode]
    return "\n".join([pack.generator, pack.render("refusal", {}), TAKEN_LINE.format(topics="")])


def _prompt_pieces(rng: random.Random, per_pack: int = 20) -> list[tuple[str, str, str]]:
    """(split, piece, the instructions it came from): runs of 2-5 words of each pack's refusal prompt."""
    pieces = []
    for mode in sorted(load_packs(None)):
        instructions = _instructions(mode)
        words = " ".join(instructions.split()).split()
        for _ in range(per_pack):
            n = rng.randint(2, 5)
            start = rng.randrange(0, len(words) - n)
            pieces.append(("held_out", " ".join(words[start : start + n]), instructions))
    return pieces


def _name_cases(store: Store, rng: random.Random) -> list[tuple[str, str]]:
    cases = []
    for document in store.list_documents():
        if document.format == "dataset":
            continue
        cases.append(("held_out", document.path.rsplit("/", 1)[-1]))
        cases.append(("held_out", document.path))
        if document.title:
            cases.append(("held_out", document.title))
    headings = sorted({h for c in store.list_chunks() for h in c.heading_path})
    cases += [("held_out", h) for h in rng.sample(headings, min(12, len(headings)))]
    return cases


def labeled_rates(show_misses: bool) -> None:
    rng = random.Random(13)
    prompt = _instructions("factual")
    print("Part 1: labeled topics (dropped = the filter keeps it out)")
    print(f"{'corpus':12} {'set':9} {'kind':16} {'cases':>5} {'dropped':>8}")
    totals: dict[tuple[str, str], list[int]] = {}
    for corpus, store in (("libffi", _import(MANUAL, (".html",))), ("sample_docs", _import(sample_docs_dir(), None))):
        chunks = store.list_chunks()
        topics = RefusalTopicFilter.build(CorpusIndex.build(chunks), store.list_documents(), chunks)
        groups: dict[str, list[tuple[str, str, str]]] = {
            "prompt piece": _prompt_pieces(rng),
            "sentence piece": [(s, t, prompt) for s, t in SENTENCE_PIECES],
            "document name": [(s, t, prompt) for s, t in _name_cases(store, rng)],
            "covered": [(s, t, prompt) for s, t in COVERED[corpus]],
            "clean neighbour": [(s, t, prompt) for s, t in CLEAN[corpus]],
        }
        for kind, cases in groups.items():
            for split in ("dev", "held_out"):
                chosen = [(t, sent) for s, t, sent in cases if s == split]
                if not chosen:
                    continue
                problems = {t: topics.topic_problem(t, sent) for t, sent in chosen}
                dropped = [t for t, _ in chosen if problems[t]]
                label = "clean" if kind == "clean neighbour" else "bad"
                cell = totals.setdefault((label, split), [0, 0])
                cell[0] += len(chosen)
                cell[1] += len(dropped)
                print(f"{corpus:12} {split:9} {kind:16} {len(chosen):5} {len(dropped):8}")
                if show_misses:
                    wrong = [t for t in problems if (t in dropped) == (label == "clean")]
                    for t in wrong:
                        print(f"    {'false alarm' if label == 'clean' else 'missed'}: {t!r} {problems[t] or ''}")
    for split in ("dev", "held_out"):
        bad, clean = totals.get(("bad", split), [0, 0]), totals.get(("clean", split), [0, 0])
        print(f"{split}: caught {bad[1]}/{bad[0]} bad = {100 * bad[1] / max(1, bad[0]):.1f}%; "
              f"false alarms {clean[1]}/{clean[0]} clean = {100 * clean[1] / max(1, clean[0]):.1f}%")


def generated_runs(n: int) -> None:
    print(f"\nPart 2: {n} refusal pairs per run against the stand-in server")
    templates = [t for pack in load_packs(None).values() for t in pack.declinations]
    for corpus, folder, suffixes in (("libffi", MANUAL, (".html",)), ("sample_docs", sample_docs_dir(), None)):
        for neighbours in (False, True):
            store = _import(folder, suffixes)
            modes = ("developer", "thinker", "factual")
            jobs = [Job(kind=PairKind.REFUSAL, mode=modes[i % 3], params={"variant": i, "seed": i, "refusal_index": i})
                    for i in range(n)]
            run_id, _ = store.create_run("generate", {}, jobs)
            with FakeOllama(responder=refusal_responder(neighbours=neighbours)) as server:
                backends = backends_from_settings(store.settings, backend="ollama", model="llama3.2:3b", hosts=[server.url])
                asyncio.run(generation_runner(store, backends, concurrency_per_host=4).run(run_id))
                requests = len(server.requests_to("/api/chat"))
            answers = [p.response for p in store.iter_pairs() if p.kind is PairKind.REFUSAL]
            phrase, share = most_shared_phrase(answers, templates)
            dropped = sum(e.count for e in store.log_tail(10_000, step="generate") if e.action == "refusal_topic_dropped")
            offered = "junk + neighbours" if neighbours else "junk only"
            print(f"{corpus:12} {offered:18} {describe_refusal_sources(store.pairs.refusal_sources())}; "
                  f"{dropped} proposals dropped; {requests} requests; most shared phrase {phrase!r} in {share:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list every miss and false alarm")
    parser.add_argument("--pairs", type=int, default=60, help="refusal pairs per generated run")
    args = parser.parse_args()
    labeled_rates(args.misses)
    generated_runs(args.pairs)


if __name__ == "__main__":
    main()
