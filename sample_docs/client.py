"""Python client for the Tidewater job broker (tidewaterd).

The client enqueues jobs, waits for their results and manages cached results
and dead letters. It never runs jobs itself: Go workers do that.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from typing import Any, Callable, Optional

import requests

TRANSIENT_STATUS = {429, 502, 503, 504}


class TidewaterError(Exception):
    """Base class of every exception raised by this package."""


class RetryableError(TidewaterError):
    """The broker was unreachable or overloaded after all client retries."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class FatalJobError(TidewaterError):
    """The job ended in the dead-letter queue."""

    def __init__(self, job_id: str, attempts: int, last_error: str):
        super().__init__(f"job {job_id} is dead after {attempts} attempts: {last_error}")
        self.job_id, self.attempts, self.last_error = job_id, attempts, last_error


class ResultTimeoutError(TidewaterError):
    """The job did not finish within the requested wait; it is still alive."""


class JobNotFoundError(TidewaterError):
    """No such job (HTTP 404), for example a dead job past its retention."""


class AuthenticationError(TidewaterError):
    """Missing or wrong bearer token (HTTP 401)."""


def cache_key(job_type: str, payload: Any) -> str:
    """Return the broker's cache key: ``tw:v1:<type>:<32 hex digits>``."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"tw:v1:{job_type}:{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:32]}"


class TidewaterClient:
    """HTTP client for one broker.

    ``base_url`` and ``token`` default to ``TIDEWATER_URL`` and
    ``TIDEWATER_TOKEN``. ``retries`` and ``backoff`` govern retries of single
    HTTP requests to the broker; job retries are the broker's ``[retry]`` policy.
    """

    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None, *,
                 timeout: float = 10.0, retries: int = 3, backoff: float = 0.5):
        self.base_url = (base_url or os.environ.get("TIDEWATER_URL", "http://127.0.0.1:7420")).rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._session = requests.Session()
        token = token if token is not None else os.environ.get("TIDEWATER_TOKEN")
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def _request(self, method: str, path: str, *, timeout: Optional[float] = None, **kwargs) -> requests.Response:
        """Send one request, retrying transient failures with doubling backoff."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                resp = self._session.request(method, self.base_url + path,
                                             timeout=timeout or self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = str(exc)
            else:
                if resp.status_code not in TRANSIENT_STATUS:
                    return self._check(resp)
                problem = f"HTTP {resp.status_code}"
                retry_after = float(resp.headers.get("Retry-After", 0)) or None
            if attempt < self.retries:
                time.sleep(retry_after or delay)
                delay *= 2
        raise RetryableError(f"{method} {path} failed: {problem}", retry_after)

    @staticmethod
    def _check(resp: requests.Response) -> requests.Response:
        """Map error statuses to exceptions."""
        if resp.status_code == 401:
            raise AuthenticationError("the broker rejected the bearer token")
        if resp.status_code == 404:
            raise JobNotFoundError(resp.url)
        if resp.status_code >= 400:
            error = resp.json().get("error", {})
            raise TidewaterError(f"{error.get('code')}: {error.get('message')}")
        return resp

    def _submit(self, job_type: str, payload: Any, queue: str, **options: Any) -> dict:
        body = {"type": job_type, "payload": payload}
        body.update({k: v for k, v in options.items() if v is not None})
        return self._request("POST", f"/v1/queues/{queue}/jobs", json=body).json()

    def enqueue(self, job_type: str, payload: Any, *, queue: str = "default",
                max_attempts: Optional[int] = None, delay: Optional[str] = None,
                dedupe_key: Optional[str] = None, cache_ttl: Optional[str] = None) -> str:
        """Store a job and return its id. Durations are strings such as ``"90s"``."""
        return self._submit(job_type, payload, queue, max_attempts=max_attempts, delay=delay,
                            dedupe_key=dedupe_key, cache_ttl=cache_ttl)["id"]

    def status(self, job_id: str) -> dict:
        """Return the job's state, attempt count and per-attempt errors."""
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def result(self, job_id: str, wait: float = 30.0) -> Any:
        """Long-poll for a result; raise FatalJobError or ResultTimeoutError."""
        deadline = time.monotonic() + wait
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            poll = min(remaining, 30.0)
            resp = self._request("GET", f"/v1/jobs/{job_id}/result", params={"wait": int(poll)},
                                 timeout=self.timeout + poll)
            body = resp.json()
            if resp.status_code == 200 and body["state"] == "succeeded":
                return body["result"]
            if resp.status_code == 200 and body["state"] == "dead":
                raise FatalJobError(job_id, body["attempts"], body["last_error"])
            if remaining <= 0:
                raise ResultTimeoutError(f"job {job_id} still {body['state']} after {wait}s")

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or scheduled job. A leased job cannot be cancelled."""
        self._request("POST", f"/v1/jobs/{job_id}/cancel")

    def requeue_dead(self, job_id: str) -> None:
        """Move a dead job back to ``queued`` with a fresh attempt budget (1.3.0+)."""
        self._request("POST", f"/v1/dead/{job_id}/requeue")

    def invalidate(self, *, job_type: Optional[str] = None, payload: Any = None,
                   prefix: Optional[str] = None) -> int:
        """Drop one cached result (type and payload) or every key under a prefix.

        For a job cached with ``key_fields``, pass only those fields as ``payload``.
        """
        if prefix is not None:
            return self._request("POST", "/v1/cache/invalidate", json={"prefix": prefix}).json()["removed"]
        try:
            self._request("DELETE", f"/v1/cache/{cache_key(job_type, payload)}")
        except JobNotFoundError:
            return 0
        return 1

    def cached_job(self, job_type: str, *, ttl: Optional[str] = None, queue: str = "default",
                   wait: float = 30.0, key_fields: Optional[list] = None) -> Callable:
        """Decorate a payload-building function so that calling it returns the result.

        A cache hit is answered by the broker without creating a job; a miss
        enqueues one (or joins an identical job already in flight) and waits.
        """
        def decorator(build_payload: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(build_payload)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                payload = build_payload(*args, **kwargs)
                reply = self._submit(job_type, payload, queue, cache=True, cache_ttl=ttl,
                                     cache_key_fields=key_fields)
                if reply.get("cached"):
                    return reply["result"]
                return self.result(reply["id"], wait=wait)
            return wrapper
        return decorator
