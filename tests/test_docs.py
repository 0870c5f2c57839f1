"""The docs a newcomer reads hold: every Python block of the README and the API page runs, and the
shipped figures (the README's results table, the app's Kodak curves) are what the committed results give."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/api.md")


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def test_the_pages_have_python_examples():
    assert all(python_blocks(page) for page in PAGES)


@pytest.mark.parametrize("page, index, code", [(page, i, code) for page in PAGES
                                                for i, code in enumerate(python_blocks(page))])
def test_every_python_block_runs(page, index, code, tmp_path):
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{page}, Python block {index + 1}:\n{code}\n{res.stderr[-3000:]}"


def test_the_shipped_figures_are_what_the_results_give():
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "make_figures.py"), "--check"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_the_figures_check_notices_a_changed_table(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_figures
    finally:
        sys.path.remove(str(ROOT / "tools"))
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text().replace("| **", "| **9", 1))
    monkeypatch.setattr(make_figures, "README", readme)
    monkeypatch.setattr(sys, "argv", ["make_figures.py", "--check"])
    assert make_figures.main() == 1
