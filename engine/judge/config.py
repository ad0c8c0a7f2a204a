"""Which backend, model and hosts judge, resolved from settings and command-line overrides."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from engine.generate.backends import BACKEND_KINDS, ChatBackend, ChatOptions, make_backend
from engine.generate.hosts import embedded_slots
from engine.settings import ProjectSettings

__all__ = ["JudgeConfig", "make_judge_backends", "resolve_judge_config"]


@dataclass(frozen=True)
class JudgeConfig:
    """Everything a judge run needs to know about its model and how to call it."""

    backend: str
    model: str
    hosts: tuple[str | None, ...]
    concurrency: int | str  # a number, or "auto"
    max_attempts: int
    threshold: float
    temperature: float
    num_ctx: int
    num_predict: int
    seed: int | None
    keep_alive: str | None
    timeout_s: float
    api_key_env: str = "OPENAI_API_KEY"

    def chat_options(self) -> ChatOptions:
        """The sampling options of one verdict request."""
        return ChatOptions(
            temperature=self.temperature,
            num_ctx=self.num_ctx,
            num_predict=self.num_predict,
            seed=self.seed,
            keep_alive=self.keep_alive,
            timeout_s=self.timeout_s,
        )


def resolve_judge_config(
    settings: ProjectSettings,
    *,
    backend: str | None = None,
    model: str | None = None,
    hosts: Sequence[str] | None = None,
    concurrency: int | str | None = None,
    threshold: float | None = None,
) -> JudgeConfig:
    """Merge overrides, ``[judge]`` settings and the generation settings, in that order.

    Raises ValueError naming the fix for an unknown backend kind or a threshold outside 0-10.
    """
    gen, judge = settings.generation, settings.judge
    kind = backend or judge.backend or gen.backend
    if kind not in BACKEND_KINDS:
        raise ValueError(f"Unknown judge backend {kind!r}: choose one of {', '.join(BACKEND_KINDS)}.")
    if threshold is not None and not 0 <= threshold <= 10:
        raise ValueError(f"The threshold {threshold:g} is outside 0-10: pick a score between 0 and 10.")
    per_host = concurrency or judge.concurrency or gen.concurrency
    if kind == "llamacpp":
        # The embedded model runs in this process: no hosts; its server decodes per_host at once.
        chosen = model or judge.model or gen.model_path or ""
        host_list: tuple[str | None, ...] = (None,)
    else:
        chosen = model or judge.model or gen.model
        # The same host twice would only double its concurrency: keep each once.
        host_list = tuple(dict.fromkeys(hosts or judge.hosts or gen.hosts)) or (None,)
    return JudgeConfig(
        backend=kind,
        model=chosen,
        hosts=host_list,
        concurrency=per_host,
        max_attempts=judge.max_attempts or gen.max_attempts,
        threshold=settings.quality.judge_threshold if threshold is None else threshold,
        temperature=gen.temperature.get("judge", 0.1),
        num_ctx=gen.num_ctx,
        num_predict=judge.num_predict,
        seed=gen.seed,
        keep_alive=gen.keep_alive,
        timeout_s=gen.timeout_s,
        api_key_env=gen.api_key_env,
    )


def make_judge_backends(config: JudgeConfig) -> list[ChatBackend]:
    """One backend per host of ``config`` (nothing connects until the first request)."""
    backends: list[ChatBackend] = []
    for host in config.hosts:
        if config.backend == "openai":
            backends.append(make_backend("openai", config.model, host, api_key=os.environ.get(config.api_key_env)))
        elif config.backend == "llamacpp":
            backends.append(make_backend(
                "llamacpp", config.model, None, n_ctx=config.num_ctx, slots=embedded_slots(config.concurrency)
            ))
        else:
            backends.append(make_backend(config.backend, config.model, host))
    return backends
