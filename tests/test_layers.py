"""pnlib's structure: the layering of pnlib/__init__.py holds, and recolouring never loads the training loop."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pnlib

PKG = Path(pnlib.__file__).resolve().parent
ROOT = PKG.parent


def _layers() -> list[str]:
    doc = pnlib.__doc__
    chain = doc[doc.index("Layers, lowest first"):]
    chain = chain[chain.index(":\n") + 2:chain.index(".\n")]
    return [m.strip() for m in re.split(r"->", chain.replace("\n", " "))]


def _pnlib_imports(path: Path) -> set[str]:
    """The pnlib modules a file imports, at the top or inside functions (``from .x import``, ``from . import x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pnlib."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pnlib."))
    return found


def test_every_module_is_in_the_layering():
    modules = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert set(_layers()) == modules


def test_no_module_imports_one_above_it():
    order = _layers()
    bad = [f"{m} imports {dep}" for m in order for dep in _pnlib_imports(PKG / f"{m}.py")
           if dep not in order or order.index(dep) >= order.index(m)]
    assert not bad, bad


def test_recolor_does_not_load_the_training_loop():
    """The shipped checkpoint is read by pnlib.checkpoint, not by the training module."""
    code = ("import sys, numpy as np, pnlib\n"
            "out = pnlib.recolor(np.zeros((20, 30, 3), np.uint8), 'navy teal gold coral ivory black')\n"
            "assert out.shape == (20, 30, 3)\n"
            "assert 'pnlib.train' not in sys.modules, 'recolor loaded pnlib.train'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 50


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_every_module_is_at_most_450_lines():
    long = {p.name: n for p in sorted(PKG.glob("*.py")) if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules by job (at most {MAX_MODULE_LINES} lines): {long}"


def test_every_function_is_at_most_50_lines():
    """Counted from ``def`` (decorators included) to its last line, docstring and nested functions included."""
    long = {}
    for path in sorted(PKG.glob("*.py")):
        for fn in _functions(ast.parse(path.read_text())):
            first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
            if fn.end_lineno - first + 1 > MAX_FUNCTION_LINES:
                long[f"{path.name}:{fn.lineno} {fn.name}"] = fn.end_lineno - first + 1
    assert not long, f"split these functions (at most {MAX_FUNCTION_LINES} lines): {long}"
