"""Key concepts of a chunk: headings, defined terms, code identifiers and config keys.

They feed multi-hop planning (chunks sharing a concept) and refusal planning (concepts
the corpus never mentions), so they favour names over common words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

MAX_CONCEPTS = 15

# Weights order concepts by salience: a heading names the topic, a stray `x` rarely does.
W_HEADING, W_DEFINITION, W_IDENTIFIER, W_BOLD, W_CONFIG_KEY, W_CODE_SPAN = 50, 30, 25, 20, 12, 10

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_BOLD = re.compile(r"\*\*([^*\n]{2,60})\*\*|__([^_\n]{2,60})__")
_CODE_SPAN = re.compile(r"``?([^`\n]{2,48})``?")
_DEFINITION = re.compile(
    r"(?:^|[.!?]\s+|\n)(?:(?:The|A|An)\s+)?([A-Z][\w-]*(?:\s+[\w-]+){0,2})\s+(?:is|are)\s+(?:a|an|the)\s+"
)
_IDENTIFIER = re.compile(
    r"^\s*(?:export\s+)?(?:pub(?:\(crate\))?\s+)?(?:public\s+|private\s+|protected\s+|static\s+|final\s+|abstract\s+|async\s+)*"
    r"(?:class|def|func|fn|function|interface|struct|trait|enum|type|impl|module|object)\s+"
    r"(?:\([^)]*\)\s*)?([A-Za-z_][\w]*)",
    re.M,
)
_CONFIG_KEY = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(?:=|:\s)", re.M)
_TOML_TABLE = re.compile(r"^\s*\[{1,2}([\w.-]+)\]{1,2}\s*$", re.M)
_NAME_LIKE = re.compile(r"[\w.\-/:@()\[\]<>]+")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)
_STOP = frozenset({"it", "this", "that", "there", "here", "which", "what", "each", "every", "one", "if"})


def extract_concepts(text: str, heading_path: Sequence[str] = (), *, code: bool = False) -> list[str]:
    """The chunk's key concepts, most salient first, deduplicated case-insensitively, at most 15."""
    scores: Counter[str] = Counter()
    first_seen: dict[str, str] = {}

    def add(term: str, weight: int) -> None:
        term = _ARTICLE.sub("", term.strip().strip(".,;:()[]{}'\"").strip())
        if len(term) < 2 or len(term) > 60 or term.lower() in _STOP:
            return
        key = term.lower()
        first_seen.setdefault(key, term)
        scores[key] += weight

    if heading_path:
        add(heading_path[-1], W_HEADING)
    for match in _MD_HEADING.finditer(text):
        add(match.group(1), W_HEADING)
    for match in _IDENTIFIER.finditer(text):
        add(match.group(1), W_IDENTIFIER)
    for match in _TOML_TABLE.finditer(text):
        add(match.group(1), W_CONFIG_KEY)
    if not code:
        for match in _DEFINITION.finditer(text):
            add(match.group(1), W_DEFINITION)
        for match in _BOLD.finditer(text):
            add(match.group(1) or match.group(2), W_BOLD)
    for match in _CODE_SPAN.finditer(text):
        span = match.group(1)
        # Spans with spaces are usually commands or snippets, not names.
        if _NAME_LIKE.fullmatch(span.strip()):
            add(span, W_CODE_SPAN)
    if code:
        for match in _CONFIG_KEY.finditer(text):
            if "." in match.group(1) or "_" in match.group(1):
                add(match.group(1), W_CONFIG_KEY)
    ranked = sorted(scores, key=lambda k: (-scores[k], list(first_seen).index(k)))
    return [first_seen[k] for k in ranked[:MAX_CONCEPTS]]
