"""Every ```python block in docs/*.md and README.md runs, unless the line before its fence is
``<!-- no-run -->``. A file's blocks run concatenated (later blocks may use earlier names) in a
fresh interpreter whose working directory is an empty temporary folder. The contributor notes
docs/architecture.md and docs/design-config-fields.md hold interface sketches and are skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_RUN = "<!-- no-run -->"
# Design notes for contributors: their blocks are interface sketches and claim nothing runs.
DESIGN_NOTES = {"architecture.md", "design-config-fields.md"}
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def runnable_blocks(text: str) -> list[str]:
    """The python blocks of a Markdown text that are not preceded by the no-run marker."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before != NO_RUN:
            blocks.append(match.group(1))
    return blocks


def _documents() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in DESIGN_NOTES)
    readme = ROOT / "README.md"
    return ([readme] if readme.exists() else []) + docs


def test_extraction_skips_marked_blocks_and_keeps_the_rest():
    text = "x\n```python\na = 1\n```\n<!-- no-run -->\n```python\nraise SystemExit(1)\n```\n```python\nb = a\n```\n"
    assert runnable_blocks(text) == ["a = 1\n", "b = a\n"]


@pytest.mark.parametrize(
    "document",
    [p for p in _documents() if runnable_blocks(p.read_text(encoding="utf-8"))],
    ids=lambda p: p.name,
)
def test_python_blocks_of_each_document_run(document, tmp_path):
    code = "\n".join(runnable_blocks(document.read_text(encoding="utf-8")))
    script = tmp_path / f"{document.stem}_blocks.py"
    script.write_text(code, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, (
        f"the python blocks of {document.name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    )


def test_quickstart_script_rerun_in_a_new_process_continues_on_the_same_data(tmp_path):
    """docs/quickstart.md section 3: "Run the same script again and fit resumes ... Pass
    max_epochs=5 to continue training." Each run is a new process, so the data the script makes
    must be the same in each (with unseeded torch.randn the continued run trained on other
    data). Two fresh runs of the script in two folders print the same result."""
    script = runnable_blocks((ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8"))[0]
    printed = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "quickstart.py").write_text(script, encoding="utf-8")
        completed = subprocess.run(
            [sys.executable, "quickstart.py"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        printed.append(completed.stdout)
    assert printed[0] == printed[1]
