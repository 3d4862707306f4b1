"""The notebooks: conventions (README.md, "Notes for maintainers"), figure links, and nbval under the `ci` preset."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ONE_THREAD

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LITERAL = re.compile(r"""^\s*(#.*)?$"""
                     r"""|^\s*[A-Z_][A-Z0-9_]*\s*=\s*("[^"]*"|'[^']*'|-?\d+(\.\d+)?|True|False|None)\s*(#.*)?$""")


def _nb(path):
    return json.loads(path.read_text())


def _src(cell):
    return "".join(cell["source"])


def test_there_are_numbered_notebooks():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names[:4] == ["01", "02", "03", "04"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    nb = _nb(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    first = _src(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("#")
    assert re.search(r"§\s*\d", first), "the title cell cites the paper section"
    assert "What you will learn" in first and "Runtime" in first
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = cells[tagged[0]]
    assert params["cell_type"] == "code"
    for line in _src(params).splitlines():
        assert LITERAL.match(line), f"parameters cell holds literals only: {line!r}"
    assert re.search(r'^PRESET\s*=\s*"quick"', _src(params), re.M), "PRESET defaults to quick"
    nxt = next(c for c in cells[tagged[0] + 1:] if c["cell_type"] == "code")
    assert "setup(PRESET" in _src(nxt), "derived values are computed in the next code cell"
    md = [_src(c) for c in cells if c["cell_type"] == "markdown"]
    assert any(s.lstrip().startswith("## Summary") for s in md)
    start = next(i for i, c in enumerate(cells) if _src(c).lstrip().startswith("## Exercises"))
    qs = next(i for i, c in enumerate(cells) if _src(c).lstrip().startswith("## Questions"))
    assert start < qs, "the exercises, then the questions, end each notebook"
    ex = "\n".join(_src(c) for c in cells[start:qs] if c["cell_type"] == "markdown")
    questions = [_src(c) for c in cells[qs + 1:]]
    assert 5 <= len(questions) <= 10, f"5-10 conceptual questions, found {len(questions)}"
    for k, q in enumerate(questions, 1):   # one cell each, numbered, the answer collapsed
        assert q.startswith(f"{k}. "), f"question {k} is numbered: {q[:60]!r}"
        assert re.search(r"<details>\s*<summary>Answer</summary>.+?</details>\s*$", q, re.S), q[:80]
    items = re.split(r"^\s*\d+\.\s", ex, flags=re.M)[1:]
    assert 3 <= len(items) <= 5, f"3-5 exercises, found {len(items)}"
    for item in items:   # a nudge and, apart from it, the answer: both collapsed
        blocks = re.findall(r"<details>\s*<summary>([^<]+)</summary>.+?</details>", item, re.S)
        assert blocks == ["Hint", "Solution"], f"exercise without a collapsed Hint then Solution: {item[:80]!r}"
    for c in cells:
        if c["cell_type"] == "markdown":
            assert len(_src(c).split()) <= 250, f"markdown cell over 250 words: {_src(c)[:80]!r}"
    long = [_src(c).splitlines()[0] for c in code if len(_src(c).splitlines()) > 15]
    assert not long, f"code cells longer than 15 lines, starting: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_what_you_should_see(path):
    """Each notebook shows, after the cell that makes it, a committed reference figure and the numbers to
    expect, so a reader on a repository browser (outputs stripped) sees the pictures."""
    cells = _nb(path)["cells"]
    found = []
    for i, c in enumerate(cells):
        text = _src(c)
        if c["cell_type"] != "markdown" or not text.lstrip().startswith("**What you should see**"):
            continue
        links = [a or b for a, b in _figure_links(text)]
        assert links, f"cell {i}: a 'What you should see' cell embeds a figure from figures/"
        for link in links:
            assert (path.parent / link).resolve().is_file(), link
        assert re.search(r"\d", text.replace(links[0], "")), f"cell {i}: states the numbers to expect"
        before = [_src(x) for x in cells[:i] if x["cell_type"] == "code"]
        stem = Path(links[0]).stem
        assert any(f'"{stem}"' in s for s in before), f"cell {i}: {stem}.png is saved by a code cell above it"
        found.append(i)
    assert found, "at least one 'What you should see' cell"


def test_every_paper_equation_is_computed_and_checked():
    """Eq. (1)-(10) each have a notebook code cell that names it and checks it (assert / assert_close)."""
    cells = [_src(c) for p in NOTEBOOKS for c in _nb(p)["cells"] if c["cell_type"] == "code"]
    for n in range(1, 11):
        checked = [s for s in cells if f"eq. ({n})" in s and re.search(r"\bassert|assert_close", s)]
        assert checked, f"no notebook code cell computes and checks eq. ({n})"


def _figure_links(text):
    return re.findall(r"\]\(([^)\s]*figures/[^)\s]+\.(?:png|jpg|svg|gif))\)|src=\"([^\"]*figures/[^\"]+)\"", text)


def test_every_linked_figure_exists():
    sources = [(ROOT / "README.md", (ROOT / "README.md").read_text(), ROOT)]
    for p in NOTEBOOKS:
        sources.append((p, "\n".join(_src(c) for c in _nb(p)["cells"] if c["cell_type"] == "markdown"), p.parent))
    n = 0
    for path, text, base in sources:
        for a, b in _figure_links(text):
            link = a or b
            n += 1
            assert (base / link).resolve().is_file(), f"{path.name} links {link}, which does not exist"
    assert n > 0, "the README shows at least one figure"


def _nbval(path):
    env = {**os.environ, "PNLIB_PRESET": "ci", **ONE_THREAD}
    env.pop("MPLBACKEND", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
                           str(path.relative_to(ROOT))], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def nbval_runs(two_lanes):
    """Every notebook under nbval, two at a time: 01-04 in order in one lane (03 trains what 04 loads at
    `ci`), the others, which load the shipped models, in the other."""
    first = [p for p in NOTEBOOKS if p.name[:2] <= "04"]
    return two_lanes([first, [p for p in NOTEBOOKS if p not in first]], _nbval)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_nbval(path, nbval_runs):
    """nbval (--nbval-lax) runs the notebook top to bottom on the `ci` preset; any error fails."""
    r = nbval_runs[path]
    if isinstance(r, Exception):
        raise r
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
