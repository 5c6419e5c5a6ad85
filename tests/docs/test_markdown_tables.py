"""Every Markdown table of the docs renders as one table: a run of ``|`` lines starts with a
header and its ``|---|`` separator, so a row cut off by a blank line cannot show up as stray
text. The contributor notes docs/architecture.md and docs/design-config-fields.md (field
sketches, not user docs) are skipped, as in test_docs_code_blocks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN_NOTES = {"architecture.md", "design-config-fields.md"}
_SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def _documents() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in DESIGN_NOTES)
    paths = [ROOT / "README.md", *docs]
    return [*paths, *sorted((ROOT / "examples").glob("*/README.md"))]


def tables_without_header(text: str) -> list[int]:
    """Line numbers (1-based) of table rows that start a table but are not followed by a
    separator row; fenced code blocks are skipped."""
    lines, found, in_fence = text.splitlines(), [], False
    for idx, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
        starts_table = line.startswith("|") and (idx == 0 or not lines[idx - 1].startswith("|"))
        if in_fence or not starts_table:
            continue
        following = lines[idx + 1] if idx + 1 < len(lines) else ""
        if not _SEPARATOR.match(following):
            found.append(idx + 1)
    return found


def test_a_row_after_a_blank_line_is_found():
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n```\n| not | a table |\n```\n"
    assert tables_without_header(text) == [5]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_starts_with_a_header(document):
    assert tables_without_header(document.read_text(encoding="utf-8")) == [], (
        f"{document.relative_to(ROOT)}: these lines start a table without a |---| separator "
        "after them (a row separated from its table by a blank line?)"
    )
