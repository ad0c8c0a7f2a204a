"""The stand-in Ollama server itself: protocol fidelity, responder, faults, standalone mode.

``tests/fake_ollama.py`` stands in for a real Ollama because none can run on the
machines that test this project; these tests keep it faithful enough for the
official ``ollama`` client and predictable for other tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from pydantic import BaseModel, Field

from tests.fake_ollama import FakeOllama, build_answer, fake_ollama, schema_answer

ROOT = Path(__file__).resolve().parent.parent
PASSAGE = (
    "Tides rise and fall twice a day. The moon pulls the ocean toward it. "
    "The sun adds a smaller pull of its own. Spring tides happen when the sun and moon line up."
)


class Step(BaseModel):
    title: str = Field(min_length=3, max_length=40)
    minutes: int = Field(ge=5, le=30)


class Plan(BaseModel):
    instruction: str
    response: str = Field(min_length=60)
    kind: str = Field(
        pattern="^(instruction|refusal)$", json_schema_extra={"enum": ["instruction", "refusal"]}
    )
    steps: list[Step] = Field(min_length=2, max_length=4)
    confidence: float = Field(ge=0, le=1)
    cited: bool
    note: str | None = None


def _request(fmt: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"Passage: {PASSAGE}"}], "format": fmt}


def test_responder_builds_valid_nested_answers() -> None:
    answer = schema_answer(_request(Plan.model_json_schema()))
    plan = Plan.model_validate(answer)
    assert plan.instruction.endswith("?")
    assert sum(sentence in plan.response for sentence in PASSAGE.split(". ")) >= 1
    assert plan.kind == "instruction"
    assert 2 <= len(plan.steps) <= 4


def test_responder_is_deterministic_and_prompt_dependent() -> None:
    schema = Plan.model_json_schema()
    assert schema_answer(_request(schema)) == schema_answer(_request(schema))
    other = {"messages": [{"role": "user", "content": "Bread rises because yeast makes gas."}]}
    assert schema_answer({**other, "format": schema}) != schema_answer(_request(schema))


def test_responder_formats() -> None:
    assert json.loads(build_answer(_request("json")))["answer"]
    prose = build_answer(_request(None))
    assert not prose.startswith("{") and len(prose.split(". ")) >= 2


async def test_generate_and_metadata_routes_with_real_client() -> None:
    with fake_ollama(models=["llama3.2:3b"]) as srv:
        client = ollama.AsyncClient(host=srv.url)
        try:
            single = await client.generate("llama3.2:3b", PASSAGE, stream=False)
            assert single.done and single.done_reason == "stop" and single.response
            assert single.prompt_eval_count == len(PASSAGE.split())
            stream = await client.generate("llama3.2:3b", PASSAGE, stream=True)
            pieces = [part.response or "" async for part in stream]
            assert "".join(pieces) == single.response
            show = await client.show("llama3.2:3b")
            assert show.details and show.details.quantization_level == "Q4_K_M"
            assert "completion" in (show.capabilities or [])
            assert (await client.ps()).models
            with pytest.raises(ollama.ResponseError) as info:
                await client.show("missing:1b")
            assert (
                info.value.status_code == 404 and info.value.error == "model 'missing:1b' not found"
            )
        finally:
            await client.close()
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/api/version")).json() == {"version": "0.12.6"}
            assert (await http.get("/")).text == "Ollama is running"
            bad = await http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
            assert (
                bad.status_code == 404
                and bad.json()["error"]["message"] == "model 'nope' not found"
            )
        assert [r.path for r in srv.requests][:2] == ["/api/generate", "/api/generate"]


async def test_parallelism_cap_and_peak() -> None:
    with fake_ollama(latency=0.1, parallel=3) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
            body = {
                "model": "qwen2.5:7b",
                "messages": [{"role": "user", "content": PASSAGE}],
                "stream": False,
            }
            started = time.perf_counter()
            await asyncio.gather(*(http.post("/api/chat", json=body) for _ in range(6)))
            elapsed = time.perf_counter() - started
        assert srv.peak_concurrency == 3
        assert elapsed >= 0.2  # two waves of three
        assert len(srv.requests_to("/api/chat")) == 6


def test_refuse_closes_the_port_and_recovers() -> None:
    with fake_ollama() as srv:
        srv.set_fault("refuse")
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", srv.port), timeout=1),
        ):
            pass
        srv.clear_faults()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=1):
            pass


def test_unknown_fault_is_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown fault"):
        FakeOllama().set_fault("explode")


def test_standalone_command_serves() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fake_ollama.py"),
            "--port",
            str(port),
            "--latency",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        tags = httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == ["llama3.2:3b", "qwen2.5:7b"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
