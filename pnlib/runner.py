"""`python -m pnlib run-notebooks`: every notebook in order, headless, through papermill.

Each notebook gets the preset as a papermill parameter (``PRESET``), runs with the kernel ``python3``
and ``notebooks/`` as its working directory, and its executed copy goes to ``runs/<preset>/``. A
failing notebook does not stop the others; the command ends non-zero listing each failure with its
cell and error.
"""
from __future__ import annotations

from pathlib import Path

from .config import NOTEBOOK_DIR, Stopwatch, default_out


def notebooks() -> list[Path]:
    """The numbered notebooks, in order (01_..., 02_..., ...)."""
    return sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(preset: str = "quick", out=None, only=None, save_figs: bool = False) -> list[dict]:
    """Run the notebooks; return one dict per notebook (name, seconds, ok, error)."""
    import os

    import papermill as pm

    # The kernels run in notebooks/: they import this pnlib even where it is not pip-installed.
    root = str(NOTEBOOK_DIR.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                          if p and p != root])
    out = Path(out) if out is not None else default_out(preset)
    out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in notebooks() if not only or any(p.name.startswith(o) for o in only)]
    results = []
    t_all = Stopwatch()
    for k, nb in enumerate(todo, 1):
        print(f"[{k}/{len(todo)}] {nb.name} (preset {preset}) ...", flush=True)
        clock = Stopwatch()
        res = {"notebook": nb.name, "output": str(out / nb.name), "ok": True, "error": None}
        try:
            pm.execute_notebook(str(nb), str(out / nb.name), parameters={"PRESET": preset, "SAVE_FIGS": save_figs},
                                kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=True)
        except pm.PapermillExecutionError as e:
            res.update(ok=False, error=f"cell {e.exec_count} (index {e.cell_index}): {e.ename}: {e.evalue}")
        except Exception as e:  # kernel died, notebook unreadable, ...
            res.update(ok=False, error=f"{type(e).__name__}: {e}")
        res["seconds"] = round(clock.s, 1)
        print(f"    {'ok' if res['ok'] else 'FAILED: ' + res['error']} in {res['seconds']} s", flush=True)
        results.append(res)
    failed = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)}/{len(results)} notebooks ran in {t_all.s:.0f} s; "
          f"executed copies in {out}")
    for r in failed:
        print(f"FAILED {r['notebook']}: {r['error']}")
    return results
