"""The ``--concurrency`` option of the commands that run jobs: a number or ``auto``."""

from __future__ import annotations

from typing import Any

import click

from engine.jobs.concurrency import AUTO, AUTO_CEILING, ConcurrencySetting


class ConcurrencyParam(click.ParamType):
    """A number of requests in flight per host (1-64), or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> ConcurrencySetting:
        """``auto`` or an integer from 1 to 64; anything else fails with one sentence."""
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip().lower()
            if text == AUTO:
                return "auto"
            try:
                number = int(text)
            except ValueError:
                self.fail(f"{value!r} is neither a number nor auto: pass e.g. 4, or auto.", param, ctx)
        if not 1 <= number <= AUTO_CEILING:
            self.fail(f"{number} is outside 1-{AUTO_CEILING}: pass a number in that range, or auto.", param, ctx)
        return number


CONCURRENCY = ConcurrencyParam()
CONCURRENCY_HELP = "Requests in flight per host: a number, or auto (found per host and remembered; the default)."

__all__ = ["CONCURRENCY", "CONCURRENCY_HELP", "ConcurrencyParam"]
