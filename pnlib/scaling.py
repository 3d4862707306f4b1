"""How many photos does the paper's model need? A data-scaling experiment (ours: the paper does not run one).

The paper trains on 1,561 designer image-palette pairs (§4.1); this repository's photos number in the
tens. Here the paper's model (``head="direct"``, everything else the preset's) is trained on nested
subsets of the training photos (:func:`pnlib.data.nested_subset`: the 6 are among the 12, ...), with the
same steps and image size and several seeds, and every run is scored on the *same* held-out photos
(the split does not follow the seed: ``split_seed``). Per run (:func:`score_photos`):

* hue shifts: each photo × the 18 shifts of §4.1, the mean ΔE00 of Î_t to the ground truth I_t
  (protocol A of :mod:`pnlib.evaluate`, the network alone);
* own palette: each photo recoloured to its own extracted palette, ΔE00 to the photo (it should come
  back);
* stray edges: the share of pixels of the hue-shift outputs whose colour jumps where the photo's does
  not (:func:`pnlib.metrics.stray_edges`);

on the held-out photos and on the run's own training photos (their gap: memorisation).
:func:`fit_trend` fits a power law in the number of photos with its uncertainty; :func:`plot_scaling`
draws ``figures/data_scaling.png``. ``python -m pnlib scaling`` runs the points (in parallel processes
with ``--jobs``) and writes one JSON per point under ``runs/scaling/<name>/``; commands in
``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

from .color import denormalize_lab
from .config import get_config
from .data import load_split, nested_subset, validation_set
from .metrics import display_lab, luminance_error, per_image_delta_e00, stray_edges
from .model import recolor_batched
from .palette import extract_palette, palette_lab_norm

#: The paper's number of training pairs (§4.1: 1,611 pairs, 50 held out).
PAPER_PHOTOS = 1561


@torch.no_grad()
def score_photos(model, pairs, size, batch: int = 18) -> dict:
    """Hue-shift ΔE00, own-palette ΔE00, stray edges and |ΔL| of ``model`` on ``pairs`` at ``size``.

    One photo (its 18 tuples) at a time, so memory stays bounded whatever the number of photos. Colour
    differences are between displayed colours (:func:`pnlib.metrics.display_lab`), as in
    :mod:`pnlib.evaluate`. Returns means over photos and the per-photo values.
    """
    hue, own, stray, dL = [], [], [], []
    for p in pairs:
        val = validation_set([p], size=size)
        out = denormalize_lab(recolor_batched(model, val["I_s"], val["P_t"], batch, val["P_s"])).double()
        I_s, I_t = denormalize_lab(val["I_s"]).double(), denormalize_lab(val["I_t"]).double()
        shown = display_lab(out)
        hue.append(float(per_image_delta_e00(shown, display_lab(I_t), display=False).mean()))
        stray.append(float(stray_edges(shown, I_s).mean()))
        dL.append(luminance_error(shown, I_s))
        mine = palette_lab_norm(extract_palette(val["rgb"][0]))[None].clamp(-1, 1)
        back = denormalize_lab(recolor_batched(model, val["I_s"][:1], mine, 1, mine)).double()
        own.append(float(per_image_delta_e00(back, I_s[:1]).mean()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"n_photos": len(pairs), "hue_de00": mean(hue), "own_de00": mean(own), "stray_edges": mean(stray),
            "abs_dL": mean(dL), "names": [p.name for p in pairs],
            "per_photo": {"hue_de00": hue, "own_de00": own, "stray_edges": stray}}


def run_point(preset: str, n: int, seed: int, root, head: str = "direct", eval_size=None, **overrides) -> dict:
    """Train (or resume, or load) one point of the curve and score it; writes ``root/n<n>-s<seed>.json``.

    ``n``: training photos (0: all); ``seed``: weights and sampler (the held-out photos stay the same);
    ``overrides``: settings of :func:`pnlib.config.get_config` (``size``, ``steps1``, ``data``, ...).
    ``eval_size``: the scoring size (default the training size).
    """
    from .train import load_or_train

    root = Path(root)
    cfg = get_config(preset, head=head, seed=seed, train_photos=n, **overrides)
    out = root / f"n{n}-s{seed}"
    t0 = time.perf_counter()
    G, history = load_or_train(preset, out=out, progress=False, head=head, seed=seed, train_photos=n, **overrides)
    train_s = time.perf_counter() - t0
    train_pairs, val_pairs = load_split(cfg["data"], seed=cfg["split_seed"])
    train_pairs = nested_subset(train_pairs, n)
    size = tuple(eval_size or cfg["size"])
    t0 = time.perf_counter()
    held_out, trained = score_photos(G, val_pairs, size), score_photos(G, train_pairs, size)
    res = {"preset": preset, "head": head, "n_photos": len(train_pairs), "seed": seed,
           "size": list(cfg["size"]), "eval_size": list(size), "steps1": cfg["steps1"], "steps2": cfg["steps2"],
           "width": cfg["width"], "data": cfg["data"], "device": str(next(G.parameters()).device),
           "train_s": train_s, "score_s": time.perf_counter() - t0, "held_out": held_out, "train": trained,
           "gap_hue_de00": held_out["hue_de00"] - trained["hue_de00"],
           "final_val_de00": next((r["val_de00"] for r in reversed(history) if "val_de00" in r), None)}
    (root / f"n{n}-s{seed}.json").write_text(json.dumps(res, indent=1))
    return res


def load_points(root) -> list[dict]:
    """Every point's JSON under ``root``, sorted by (head, photos, seed)."""
    pts = [json.loads(f.read_text()) for f in sorted(Path(root).glob("n*-s*.json"))]
    return sorted(pts, key=lambda r: (r["head"], r["n_photos"], r["seed"]))


def fit_trend(points: list[dict], key: str = "hue_de00", at: float = PAPER_PHOTOS) -> dict:
    """Least-squares power law ``err = a · n^b`` (a line in log-log) through every run's held-out ``key``.

    Returns a, b, their standard errors, and the extrapolation to ``at`` photos with a 95 % interval
    from the fit's covariance (t quantile, n - 2 degrees of freedom): an extrapolation, not a result.
    """
    import numpy as np
    from scipy import stats

    x = np.log(np.array([p["n_photos"] for p in points], dtype=float))
    y = np.log(np.array([p["held_out"][key] for p in points], dtype=float))
    if len(set(x.tolist())) < 2 or len(x) < 3:
        raise ValueError("a trend needs at least three runs on at least two numbers of photos")
    X = np.stack([np.ones_like(x), x], 1)
    coef, res, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(x) - 2
    sigma2 = float(((y - X @ coef) ** 2).sum() / max(dof, 1))
    cov = sigma2 * np.linalg.inv(X.T @ X)
    q = stats.t.ppf(0.975, max(dof, 1))

    def predict(n):
        v = np.array([1.0, math.log(n)])
        m, s = float(v @ coef), math.sqrt(float(v @ cov @ v))
        return math.exp(m), math.exp(m - q * s), math.exp(m + q * s)

    mid, lo, hi = predict(at)
    return {"key": key, "a": math.exp(coef[0]), "b": float(coef[1]), "b_se": math.sqrt(cov[1, 1]),
            "at": at, "predicted": mid, "interval95": [lo, hi], "n_runs": len(x), "predict": predict}


def run_points(preset: str, sizes, seeds, root, jobs: int = 1, head: str = "direct", **overrides) -> list[dict]:
    """Every (n, seed) point, ``jobs`` at a time in their own processes (one process: in this one)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    todo = [(n, s) for n in sizes for s in seeds]
    if jobs <= 1:
        for n, s in todo:
            r = run_point(preset, n, s, root, head=head, **overrides)
            print(f"{head} n={r['n_photos']} seed {s}: held-out hue {r['held_out']['hue_de00']:.2f}, "
                  f"train hue {r['train']['hue_de00']:.2f}, own {r['held_out']['own_de00']:.2f}, "
                  f"stray {100 * r['held_out']['stray_edges']:.1f} %  ({r['train_s']:.0f} s)", flush=True)
        return load_points(root)
    args = json.dumps({"preset": preset, "root": str(root), "head": head, **overrides})
    running, pending = [], list(todo)
    while pending or running:
        while pending and len(running) < jobs:
            n, s = pending.pop(0)
            cmd = [sys.executable, "-c", "import sys, json; from pnlib.scaling import _child; _child(sys.argv[1:])",
                   args, str(n), str(s)]
            running.append(((n, s), subprocess.Popen(cmd)))
        time.sleep(1)
        for item in list(running):
            (n, s), proc = item
            if proc.poll() is not None:
                running.remove(item)
                print(f"point n={n} seed {s}: {'done' if proc.returncode == 0 else f'FAILED ({proc.returncode})'}",
                      flush=True)
    return load_points(root)


def _child(argv) -> None:
    a = json.loads(argv[0])
    torch.set_num_threads(max(1, (torch.get_num_threads() or 1) // 4))
    run_point(a.pop("preset"), int(argv[1]), int(argv[2]), a.pop("root"), **a)
