"""Boilerplate and markup stay out of chunks; every chunk keeps an exact span."""

from __future__ import annotations

from engine.ingest import chunk_text
from engine.settings import ChunkingSettings

SMALL = ChunkingSettings(size_chars=400, overlap_chars=60, min_chars=0)


def _assert_exact(text: str, chunks: list) -> None:
    assert chunks
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text


RST = """\
Guide
=====

.. toctree::
   :maxdepth: 2
   :caption: Contents

   getting-started
   configuration

.. _install-label:

Installing the broker takes one command and a configuration file with the
listen address and the data directory.

.. note::
   :class: tip

   Workers hold no durable state, so any of them can be stopped at any time.

.. code-block:: rst

   .. toctree::
      example

Closing words about the broker.
"""


def test_rst_directive_lines_are_not_chunk_text() -> None:
    chunks = list(chunk_text(RST, style="rst", settings=SMALL))
    _assert_exact(RST, chunks)
    joined = "\n".join(c.text for c in chunks)
    for markup in (".. toctree::\n   :maxdepth", ":maxdepth:", ":caption:", "getting-started", ".. _install-label:", ".. note::", ":class:"):
        assert markup not in joined
    # Prose inside a directive, and a directive shown as a code example, are content.
    assert "Workers hold no durable state" in joined
    assert "Installing the broker" in joined
    assert ".. code-block:: rst\n\n   .. toctree::\n      example" in joined
    assert all(c.heading_path == ["Guide"] for c in chunks)
