"""PairForge engine: a plain Python library that turns documents into fine-tuning pairs.

The engine never imports Textual; the CLI and the terminal app both drive it.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
