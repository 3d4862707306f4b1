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
    hue, own, stray, dL, ident = [], [], [], [], []
    for p in pairs:
        val = validation_set([p], size=size)
        out = denormalize_lab(recolor_batched(model, val["I_s"], val["P_t"], batch, val["P_s"])).double()
        I_s, I_t = denormalize_lab(val["I_s"]).double(), denormalize_lab(val["I_t"]).double()
        shown = display_lab(out)
        hue.append(float(per_image_delta_e00(shown, display_lab(I_t), display=False).mean()))
        ident.append(float(per_image_delta_e00(display_lab(I_s), display_lab(I_t), display=False).mean()))
        stray.append(float(stray_edges(shown, I_s).mean()))
        dL.append(luminance_error(shown, I_s))
        mine = palette_lab_norm(extract_palette(val["rgb"][0]))[None].clamp(-1, 1)
        back = denormalize_lab(recolor_batched(model, val["I_s"][:1], mine, 1, mine)).double()
        own.append(float(per_image_delta_e00(back, I_s[:1]).mean()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"n_photos": len(pairs), "hue_de00": mean(hue), "own_de00": mean(own), "stray_edges": mean(stray),
            "abs_dL": mean(dL), "identity_hue_de00": mean(ident), "names": [p.name for p in pairs],
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
    tag = "" if list(size) == list(cfg["size"]) else f"-e{size[0]}x{size[1]}"  # scored at another size
    (root / f"n{n}-s{seed}{tag}.json").write_text(json.dumps(res, indent=1))
    return res


def load_points(root, eval_size=None) -> list[dict]:
    """Every point's JSON under ``root``, sorted by (head, photos, seed): those scored at their training
    size, or with ``eval_size = (H, W)`` those scored at that size."""
    tag = "" if eval_size is None else f"-e{eval_size[0]}x{eval_size[1]}"
    files = [f for f in sorted(Path(root).glob("n*-s*.json")) if f.stem.endswith(tag) and ("-e" in f.stem) == bool(tag)]
    pts = [json.loads(f.read_text()) for f in files]
    if eval_size is not None:  # also the runs trained at that size
        pts += [p for p in load_points(root) if p["size"] == list(eval_size)]
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


def identity_score(data: str, size, split_seed: int = 0) -> float:
    """Hue-shift ΔE00 of the unchanged source on the held-out photos of ``data`` at ``size``: the bar."""
    _, val_pairs = load_split(data, seed=split_seed)
    vals = []
    for p in val_pairs:
        val = validation_set([p], size=size)
        I_s, I_t = (display_lab(denormalize_lab(val[k]).double()) for k in ("I_s", "I_t"))
        vals.append(float(per_image_delta_e00(I_s, I_t, display=False).mean()))
    return sum(vals) / len(vals)


def summarize(roots, identity: dict | None = None) -> dict:
    """The points under each folder of ``roots`` (one curve each) in one JSON-ready dict, per-photo
    lists dropped; ``identity``: the unchanged source's held-out hue-shift ΔE00 per scoring size."""
    curves = []
    for root in roots:
        pts = load_points(root)
        if not pts:
            continue
        keep = lambda d: {k: v for k, v in d.items() if k not in ("per_photo", "names")}  # noqa: E731
        curves.append({"folder": Path(root).name, "head": pts[0]["head"], "size": pts[0]["size"],
                       "steps1": pts[0]["steps1"], "steps2": pts[0]["steps2"], "width": pts[0]["width"],
                       "points": [{**{k: v for k, v in p.items() if k not in ("held_out", "train")},
                                   "held_out": keep(p["held_out"]), "train": keep(p["train"])} for p in pts]})
    return {"curves": curves, "identity": identity or {}, "paper_photos": PAPER_PHOTOS}


def run_points(preset: str, sizes, seeds, root, jobs: int = 1, head: str = "direct", eval_size=None, **overrides
               ) -> list[dict]:
    """Every (n, seed) point, ``jobs`` at a time in their own processes (one process: in this one)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    todo = [(n, s) for n in sizes for s in seeds]
    if jobs <= 1:
        for n, s in todo:
            r = run_point(preset, n, s, root, head=head, eval_size=eval_size, **overrides)
            print(f"{head} n={r['n_photos']} seed {s}: held-out hue {r['held_out']['hue_de00']:.2f}, "
                  f"train hue {r['train']['hue_de00']:.2f}, own {r['held_out']['own_de00']:.2f}, "
                  f"stray {100 * r['held_out']['stray_edges']:.1f} %  ({r['train_s']:.0f} s)", flush=True)
        return load_points(root, eval_size)
    args = json.dumps({"preset": preset, "root": str(root), "head": head, "eval_size": eval_size, **overrides})
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
    return load_points(root, eval_size)


def _child(argv) -> None:
    a = json.loads(argv[0])
    torch.set_num_threads(max(1, (torch.get_num_threads() or 1) // 4))
    run_point(a.pop("preset"), int(argv[1]), int(argv[2]), a.pop("root"), **a)


def to_markdown(summary: dict) -> str:
    """One Markdown table per curve of :func:`summarize`: per number of photos, the mean over seeds (and
    each seed's value) of the held-out and training hue-shift ΔE00, their gap, own palette, stray edges."""
    out = []
    for c in summary["curves"]:
        who = "PaletteNet (the paper's, `direct`)" if c["head"] == "direct" else f"ours ({c['head']} head)"
        out += [f"{who}, trained at {c['size'][0]}×{c['size'][1]}, {c['steps1']} + {c['steps2']} steps, width "
                f"{c['width']}; scored at {c['points'][0]['eval_size'][0]}×{c['points'][0]['eval_size'][1]}:", "",
                "| training photos | seeds | hue shifts, held out ↓ | hue shifts, its training photos | gap | "
                "own palette, held out ↓ | stray edges %, held out ↓ |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for n in sorted({p["n_photos"] for p in c["points"]}):
            pts = [p for p in c["points"] if p["n_photos"] == n]

            def cell(get, scale=1.0, pts=pts):
                vals = [scale * get(p) for p in pts]
                mean = sum(vals) / len(vals)
                return f"{mean:.2f}" + (f" ({', '.join(f'{v:.2f}' for v in vals)})" if len(vals) > 1 else "")
            out.append(f"| {n} | {len(pts)} | {cell(lambda p: p['held_out']['hue_de00'])} | "
                       f"{cell(lambda p: p['train']['hue_de00'])} | {cell(lambda p: p['gap_hue_de00'])} | "
                       f"{cell(lambda p: p['held_out']['own_de00'])} | "
                       f"{cell(lambda p: p['held_out']['stray_edges'], 100)} |")
        out.append("")
    return "\n".join(out)


def plot_scaling(summary: dict, size=(12.5, 6.2)):
    """``figures/data_scaling.png``: held-out error against training photos (log x), per model.

    ``summary``: :func:`pnlib.scaling.summarize`. Left: hue-shift ΔE00 on the held-out photos (filled
    markers, one per seed) and on each run's own training photos (open markers), the unchanged source as
    a dashed line, and for the paper's model a power law through the held-out points with its 95 %
    band, extended to the paper's 1,561 photos (an extrapolation, drawn dotted). Right: the photo asked
    for its own palette (ΔE00 to the photo) and stray edges, held out.
    """
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=size)
    styles = {"direct": ("tab:blue", "PaletteNet (the paper's)"), "palette": ("tab:orange", "ours: palette head")}
    for c in summary["curves"]:
        colour, who = styles.get(c["head"], ("tab:grey", c["head"]))
        pts = c["points"]
        ev = pts[0].get("eval_size", c["size"])
        who = f"{who}, {c['size'][0]}×{c['size'][1]}" + (f" (scored at {ev[0]}×{ev[1]})" if ev != c["size"] else "")
        n = [p["n_photos"] for p in pts]
        marker = "o" if c["size"][0] <= 96 else "s"
        ax.scatter(n, [p["held_out"]["hue_de00"] for p in pts], color=colour, marker=marker, label=f"{who}: held out")
        ax.scatter(n, [p["train"]["hue_de00"] for p in pts], facecolors="none", edgecolors=colour, marker=marker,
                   label=f"{who}: its training photos")
        ax2.scatter(n, [p["held_out"]["own_de00"] for p in pts], color=colour, marker=marker,
                    label=f"{who}: own palette")
        stray = [100 * p["held_out"]["stray_edges"] for p in pts]
        ax2.scatter(n, stray, color=colour, marker="x" if marker == "o" else "+",
                    label=f"{who}: stray edges %")
        if c["head"] == "direct" and len(set(n)) >= 2 and len(n) >= 3:
            _draw_trend(ax, pts, colour, summary.get("paper_photos", PAPER_PHOTOS))
    for key, value in summary.get("identity", {}).items():
        ax.axhline(value, color="grey", ls="--", lw=1, label=f"unchanged source ({key})")
    tops = [v for c in summary["curves"] for p in c["points"]
            for v in (p["held_out"]["hue_de00"], p["train"]["hue_de00"])]
    ax.set_ylim(0, 1.2 * max(tops + list(summary.get("identity", {}).values())))
    for a, title, ylabel in ((ax, "hue shifts (§4.1): ΔE00 to the ground truth", "ΔE00"),
                             (ax2, "held out: own palette (ΔE00 to the photo), stray edges (%)", "ΔE00  /  %")):
        a.set_xscale("log")
        a.set_xlim(4, 2500)
        a.set_xlabel("training photos")
        a.set_ylabel(ylabel)
        a.set_title(title, fontsize=10)
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    ax.axvline(summary.get("paper_photos", 1561), color="k", lw=0.6)
    ax.text(summary.get("paper_photos", 1561), ax.get_ylim()[1], " the paper's 1,561", fontsize=7, va="top")
    fig.tight_layout()
    return fig


def _draw_trend(ax, pts, colour, at):
    """The power law of :func:`fit_trend` through ``pts`` with its 95 % band, dotted beyond the data."""
    import numpy as np

    n = [p["n_photos"] for p in pts]
    fit = fit_trend(pts)
    xs = np.geomspace(min(n), at, 60)
    mid, lo, hi = np.array([fit["predict"](x) for x in xs]).T
    inside = xs <= max(n)
    ax.plot(xs[inside], mid[inside], color=colour, lw=1)
    ax.plot(xs[~inside], mid[~inside], color=colour, lw=1, ls=":")
    ax.fill_between(xs, lo, hi, color=colour, alpha=0.12,
                    label=f"power law n^{fit['b']:.2f}±{fit['b_se']:.2f}, 95 % band (dotted: extrapolated)")
