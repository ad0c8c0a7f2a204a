"""A minimal Ollama-protocol server written only with the standard library, for benchmarks.

It is a second implementation of the protocol, deliberately unlike ``tests/fake_ollama.py``
in the ways real servers differ: HTTP/1.0 (the response ends when the connection closes,
so every request opens a new connection), the standard library's default socket options
(Nagle's algorithm on) and unbuffered writes (headers and body leave in separate writes).
``slots`` requests are answered at once (slots taken in arrival order, like ``OLLAMA_NUM_PARALLEL``); each
answer takes ``latency`` seconds inside its slot.

Routes: ``POST /api/chat`` (NDJSON stream by default, one JSON object with
``"stream": false``), ``GET /api/tags``, ``POST /api/show``, ``GET /api/version``. The
answer text is a JSON value matching the request's ``format`` schema, built by the
deterministic responder of the test server (only the HTTP side is reimplemented here).

Run: ``python bench/plain_ollama_server.py --port 0 --slots 4 --latency 0.2``; it prints
``listening on http://127.0.0.1:PORT`` and serves until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Only the answer text and a queue served in order come from the test server.
from tests.fake_ollama import FairSlots, build_answer

MODEL = "llama3.2:3b"


class PlainOllamaServer(ThreadingHTTPServer):
    """The listening server: its slots and the latency of one answer."""

    daemon_threads = True
    # The standard library listens with a backlog of 5; servers written in Go or C use the
    # system's (4096): more clients connecting at once than 5 would be refused, not served.
    request_queue_size = 1024

    def __init__(self, port: int, slots: int, latency: float, models: list[str]) -> None:
        self.slots = FairSlots(slots)
        self.stopping = threading.Event()
        self.latency = latency
        self.models = models
        super().__init__(("127.0.0.1", port), PlainHandler)


class PlainHandler(BaseHTTPRequestHandler):
    """One request on one connection (HTTP/1.0, the standard library's defaults)."""

    server: PlainOllamaServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a benchmark prints its own figures."""

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length)) if length else {}
        return data if isinstance(data, dict) else {}

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        """``/api/tags`` and ``/api/version``."""
        if self.path == "/api/version":
            self._json(200, {"version": "0.12.0"})
        elif self.path == "/api/tags":
            self._json(200, {"models": [_entry(name) for name in self.server.models]})
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        """``/api/show`` and ``/api/chat``."""
        body = self._body()
        model = str(body.get("model") or body.get("name") or "")
        known = model in self.server.models or f"{model}:latest" in self.server.models
        if self.path not in ("/api/show", "/api/chat"):
            self._json(404, {"error": "404 page not found"})
        elif not known:
            self._json(404, {"error": f"model '{model}' not found"})
        elif self.path == "/api/show":
            self._json(200, {"modelfile": f"FROM {model}\n", "details": _entry(model)["details"],
                             "capabilities": ["completion"]})
        else:
            self._chat(model, body)

    def _chat(self, model: str, body: dict[str, Any]) -> None:
        self.server.slots.acquire(self.server.stopping)  # in arrival order, as Ollama queues requests
        try:
            time.sleep(self.server.latency)
            content = build_answer(body)
        finally:
            self.server.slots.release()
        words = content.split(" ")
        final = {
            "model": model, "created_at": _now(), "done": True, "done_reason": "stop",
            "prompt_eval_count": sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or []),
            "eval_count": len(words), "total_duration": int(self.server.latency * 1e9),
        }
        if body.get("stream") is False:
            self._json(200, {**final, "message": {"role": "assistant", "content": content}})
            return
        # No Content-Length: an HTTP/1.0 stream ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            part = {"model": model, "created_at": _now(), "done": False,
                    "message": {"role": "assistant", "content": piece}}
            self.wfile.write(json.dumps(part).encode() + b"\n")
        self.wfile.write(json.dumps({**final, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")


def _entry(name: str) -> dict[str, Any]:
    return {"name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 2_000_000_000,
            "digest": "0" * 64, "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                                            "quantization_level": "Q4_K_M"}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def main() -> None:
    """Serve until killed, printing the address first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slots", type=int, default=1, help="answers served at once")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per answer, inside its slot")
    parser.add_argument("--models", default=MODEL)
    args = parser.parse_args()
    server = PlainOllamaServer(args.port, args.slots, args.latency, args.models.split(","))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
