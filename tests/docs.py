"""Reading the documentation the way a user does: the shell blocks of a walk-through, in order.

Tests that follow a walk-through run exactly these blocks; the only liberty they take is
the one the text itself offers (a line of variables "you can pick").
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"

_FENCE = re.compile(r"^```(\w*)\s*$")


def section(document: str, heading: str) -> str:
    """The text under the markdown heading ``heading`` (any level), up to the next heading
    of the same or a higher level."""
    lines = (DOCS / document).read_text().splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"^(#+) (.*)$", line)
        if match and match.group(2).strip() == heading:
            level = len(match.group(1))
            break
    else:
        raise LookupError(f"docs/{document} has no heading {heading!r}")
    body = []
    inside_fence = False
    for line in lines[start + 1:]:
        if _FENCE.match(line):
            inside_fence = not inside_fence
        heading_match = None if inside_fence else re.match(r"^(#+) ", line)
        if heading_match and len(heading_match.group(1)) <= level:
            break
        body.append(line)
    return "\n".join(body)


def shell_blocks(document: str, heading: str) -> list[str]:
    """Every ```sh block under ``heading``, in the order a reader meets them."""
    blocks, current, is_shell = [], None, False
    for line in section(document, heading).splitlines():
        fence = _FENCE.match(line)
        if fence and current is None:
            current, is_shell = [], fence.group(1) in ("sh", "bash", "shell")
        elif fence:
            if is_shell:
                blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks
