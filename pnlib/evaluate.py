"""The evaluation: both protocols of :mod:`pnlib.protocols` on the held-out photos, timed, as a table,
JSON and a Fig. 8/9-style figure (``python -m pnlib eval``; §4.1, §4.5).

:func:`evaluate` runs protocol A (hue shifts, with ground truth), protocol B (other photos' palettes
and random ones, no ground truth) and the photo's own palette (:mod:`pnlib.protocols` defines them)
and times them; :func:`to_markdown` writes the table, :func:`save_json` the numbers,
:func:`comparison_figure` a Fig. 8/9-style grid. The protocols' names are importable from here too.
Imports data, protocols, checkpoint and inference; never the training loop.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from .config import RUNS_DIR, SHIPPED, Stopwatch, default_out, torch_threads
from .data import load_split, validation_set  # noqa: F401 - validation_set: part of this module's API
from .inference import load_model
from .palette import match_palette, parse_palette, random_palettes  # noqa: F401 - this module's API too
from .protocols import (  # noqa: F401
    ADHERENCE_PIXELS,
    EXTREME_PALETTES,
    LABELS,
    MODEL_KEYS,
    extreme_palettes,
    methods_a,
    methods_b,
    model_key,
    protocol_a,
    protocol_b,
    protocol_b_targets,
    protocol_own,
    tan_decompositions,
)

__all__ = ["DEFAULT_SIZE", "LABELS", "MODEL_KEYS", "model_key", "methods_a", "methods_b", "EXTREME_PALETTES",
           "evaluate", "extreme_palettes",
           "random_palettes", "match_palette", "to_markdown", "save_json", "comparison_figure",
           "default_checkpoint", "json_path"]

#: Evaluation size (H, W): the paper's 288×432 (§4.1). On a 2-core CPU (with 1 torch thread, see
#: ``threads``) the whole evaluation of a width-16 model takes about 50 s there, 20 s at 192×288.
DEFAULT_SIZE = (288, 432)


# -------------------------------------------------------------------------------------------- evaluate
def evaluate(model, data="bundled", size=DEFAULT_SIZE, n_random: int = 6, seed: int = 0, n_photo: int = 6,
             split_seed: int = 0, checkpoint: str | None = None, keep_outputs: bool = False,
             progress: bool = False, threads: int | None = 1) -> dict:
    """Both protocols on the held-out photos of ``data``; returns a JSON-ready dict (plus tensors under
    ``protocol_a/b["outputs"]`` when ``keep_outputs``, for :func:`comparison_figure`).

    ``model``: a :class:`~pnlib.model.PaletteNet` or a checkpoint path (:func:`pnlib.inference.load_model`).
    ``data``: "bundled" or a photo folder (:func:`pnlib.data.load_pairs`), split by
    :func:`~pnlib.data.split_pairs` with ``split_seed`` (training's ``seed``: the same held-out photos).
    ``size``: (H, W) of the evaluated images. ``n_random``, ``seed``: protocol B's random palettes;
    ``n_photo``: protocol B's photo palettes per image. ``checkpoint``: the name shown above the table.
    ``threads``: torch CPU threads while it runs (restored after; None: leave as is). 1 by default: the
    work is mostly many small tensor ops (Chang's gamut search, k-means, colour conversions) that extra
    threads do not speed up and, on a busy CPU, slow down badly (measured on a loaded 2-core machine
    at 192×288: 20 s with 1 thread, 77 s with 2).
    Keys: ``checkpoint``, ``data`` (source, held-out and training names), ``size``, ``settings``,
    ``protocol_a``, ``protocol_b`` (each with ``methods`` -> metric -> value), ``timing`` (seconds).
    """
    with torch_threads(threads):
        return _evaluate(model, data=data, size=size, n_random=n_random, seed=seed, n_photo=n_photo,
                         split_seed=split_seed, checkpoint=checkpoint, keep_outputs=keep_outputs, progress=progress)


def _evaluate(model, *, data, size, n_random, seed, n_photo, split_seed, checkpoint, keep_outputs, progress) -> dict:
    total = Stopwatch()
    if isinstance(model, (str, Path)):
        checkpoint = checkpoint or str(model)
        model = load_model(model)
    H, W = (int(s) for s in size)
    train_pairs, val_pairs = load_split(data, seed=split_seed)   # too few photos: load_split says so
    val = validation_set(val_pairs, size=(H, W))
    t_load = total.s
    if progress:
        print(f"evaluating on {len(val_pairs)} held-out photos at {H}×{W}: {', '.join(p.name for p in val_pairs)}")
    with Stopwatch() as t_a:
        a = protocol_a(model, val_pairs, (H, W), keep_outputs=keep_outputs, progress=progress, val=val)
    with Stopwatch() as t_b:
        b = protocol_b(model, val_pairs, train_pairs, (H, W), n_photo=n_photo, n_random=n_random, seed=seed,
                       keep_outputs=keep_outputs, progress=progress, val=val)
    own = protocol_own(model, val, progress)
    tan = [t.seconds for t in tan_decompositions(val)]     # cached: the time of the first computation
    return {
        "checkpoint": checkpoint,
        "model": {"width": model.width, "head": model.head, "key": model_key(model), "label": LABELS[model_key(model)]},
        "data": {"source": str(data), "held_out": [p.name for p in val_pairs],
                 "train": [p.name for p in train_pairs]},
        "device": str(next(model.parameters()).device),
        "size": [H, W],
        "settings": {"n_random": n_random, "seed": seed, "n_photo": n_photo, "split_seed": split_seed,
                     "adherence_pixels": ADHERENCE_PIXELS, "torch_threads": torch.get_num_threads()},
        "protocol_a": a, "protocol_b": b, "own_palette": own,
        "timing": {"load_s": t_load, "protocol_a_s": t_a.s, "protocol_b_s": t_b.s, "total_s": total.s,
                   "tan_layers_s": tan,
                   "tan_recolor_s": b["methods"]["tan"]["recolor_seconds"] / max(b["n_tuples"], 1)},
    }


# --------------------------------------------------------------------------------------------- reports
def _f(x) -> str:
    return "—" if x is None else f"{x:.2f}"


def to_markdown(results: dict) -> str:
    """A Markdown table, one row per method (named by :data:`LABELS`, its key in brackets), with the
    checkpoint and data named above it.

    Columns: protocol A (ground truth): mean and median ΔE00 to I_t, mean |ΔL| to the source;
    protocol B (no ground truth): palette adherence ΔE00, mean |ΔL|. Lower is better everywhere.
    """
    a, b = results["protocol_a"], results["protocol_b"]
    d = results["data"]
    H, W = results["size"]
    per = b.get("targets_per_image", {})
    lines = [
        f"**Checkpoint**: `{results.get('checkpoint') or 'a model passed in'}`  ",
        f"**Data**: {d['source']}, held out: {', '.join(n.split('/')[-1] for n in d['held_out'])} "
        f"({len(d['held_out'])} photos, {len(d['train'])} in training), at {H}×{W}  ",
        f"**A**: {a['n_tuples']} tuples (each held-out photo × 18 hue shifts, ground truth I_t). "
        f"**B**: {b['n_tuples']} tuples (each held-out photo × {per.get('held-out', 0)} held-out + "
        f"{per.get('train', 0)} training photo palettes + {per.get('random', 0)} random palettes). "
        "**Own**: each held-out photo recoloured to its own palette (ΔE00 to the source). "
        "**Stray edges**: share of pixels where the output's colour jumps and the source's does not (%). "
        "ΔE00 = CIEDE2000 as displayed; lower is better.",
        "",
        "| method | A: mean ΔE00 | A: median ΔE00 | A: mean \\|ΔL\\| | own: ΔE00 to source | B: adherence ΔE00 "
        "| B: adherence at equal L | B: mean \\|ΔL\\| | B: stray edges % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    own = results.get("own_palette", {}).get("methods", {})
    for m in a["methods"]:
        ma, mb, mo = a["methods"].get(m, {}), b["methods"].get(m, {}), own.get(m, {})
        stray = mb.get("stray_edges")
        lines.append(f"| {LABELS.get(m, m)} (`{m}`) "
                     f"| {_f(ma.get('mean_de00'))} | {_f(ma.get('median_de00'))} | {_f(ma.get('mean_abs_dL'))} "
                     f"| {_f(mo.get('mean_de00'))} | {_f(mb.get('adherence'))} | {_f(mb.get('adherence_equal_L'))} "
                     f"| {_f(mb.get('mean_abs_dL'))} | {_f(None if stray is None else 100 * stray)} |")
    t = results.get("timing", {})
    if t.get("tan_layers_s"):
        lines += ["", f"Tan et al.'s layers: {statistics.fmean(t['tan_layers_s']):.2f} s per photo (once, at {H}×{W}), "
                  f"then {1000 * t['tan_recolor_s']:.1f} ms per recolouring."]
    return "\n".join(lines)


def _jsonable(results: dict) -> dict:
    out = {k: v for k, v in results.items() if k not in ("protocol_a", "protocol_b")}
    for k in ("protocol_a", "protocol_b"):
        out[k] = {kk: vv for kk, vv in results[k].items() if kk != "outputs"}
    return out


def save_json(results: dict, path) -> Path:
    """Write the numbers (not the images kept by ``keep_outputs``) to ``path`` as JSON; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(results), indent=1, ensure_ascii=False))
    return path


def default_rows(results: dict) -> list[tuple[str, int]]:
    """Four rows for :func:`comparison_figure`: two protocol-A tuples (hue +120° of the first held-out
    photo, +240° of the last), a protocol-B photo palette and a protocol-B random (extreme) palette."""
    a, b = results["protocol_a"]["tuples"], results["protocol_b"]["tuples"]
    names = results["data"]["held_out"]
    rows = [("A", next(i for i, t in enumerate(a) if t["image"] == names[0] and t["shift"] == 120)),
            ("A", next(i for i, t in enumerate(a) if t["image"] == names[-1] and t["shift"] == 240))]
    photo = [i for i, t in enumerate(b) if t["kind"] != "random"]
    rand = [i for i, t in enumerate(b) if t["kind"] == "random"]
    if photo:
        rows.append(("B", photo[0]))
    if rand:
        rows.append(("B", rand[-1]))
    return rows


def comparison_figure(results: dict, rows=None, size: float = 2.4):
    """Fig. 8/9 side by side from ``evaluate(..., keep_outputs=True)``; returns the figure.

    Columns: (a) source, (b) source palette P_j, (c) target palette P_t, (d) Chang et al. 2015,
    (e) Tan et al. 2018 (after the paper), (f) the model, titled by whose it is (:data:`LABELS`), (g) the
    ground truth I_t (protocol A rows; protocol B has none). ``rows``: a list of
    ``("A", tuple index)`` / ``("B", tuple index)``; default :func:`default_rows`. Each output's title
    carries its score: ΔE00 to I_t (A) or palette adherence ΔE00 (B).
    """
    import matplotlib.pyplot as plt

    rows = rows if rows is not None else default_rows(results)
    H, W = results["size"]
    ratios = [W / H, 0.22, 0.22, W / H, W / H, W / H, W / H]
    fig, axes = plt.subplots(len(rows), 7, figsize=(size * sum(ratios), size * len(rows) * 1.12),
                             gridspec_kw={"width_ratios": ratios}, squeeze=False)
    key = results["model"]["key"]
    heads = ["(a) source", "(b) P_s", "(c) P_t", "(d) Chang et al. 2015\n(reimplemented)",
             "(e) Tan et al. 2018\n(reimplemented)",
             f"(f) {LABELS[key]}".replace(": ", ":\n", 1).replace(" (", "\n(", 1), "(g) ground truth"]
    for r, (proto, i) in enumerate(rows):
        for c, (ax, (img, title)) in enumerate(zip(axes[r], _figure_cells(results, proto, i), strict=True)):
            ax.axis("off")
            if img is not None:
                ax.imshow(img, aspect="auto")
            ax.set_title((heads[c] + "\n" if r == 0 else "") + title, fontsize=8)
    fig.tight_layout()
    return fig


def _figure_cells(results: dict, proto: str, i: int) -> list:
    """One row of :func:`comparison_figure`: seven (image or None, title) cells for tuple ``i`` of protocol
    ``proto`` ("A" or "B")."""
    from .palette import palette_swatch

    P = results["protocol_a" if proto == "A" else "protocol_b"]
    o, t = P["outputs"], P["tuples"][i]
    v = results["data"]["held_out"].index(t["image"])
    if proto == "A":
        key, what, label = "per_tuple_de00", "ΔE00", f"A: +{t['shift']:.0f}°"
    else:
        key, what, label = "per_tuple_adherence", "adherence", f"B: {t['target'].split('/')[-1]}"
    model = results["model"]["key"]
    scores = {m: f"{what} {P['methods'][m][key][i]:.1f}" for m in ("chang", "tan", model)}

    def hwc(x):
        return x.permute(1, 2, 0).numpy()

    def vertical(p):
        return palette_swatch(p).transpose(1, 0, 2)
    return [(hwc(o["source"][v]), f"{t['image'].split('/')[-1]}\n{label}"),
            (vertical(o["source_palette"][v]), ""), (vertical(o["target_palette"][i]), ""),
            (hwc(o["chang"][i]), scores["chang"]), (hwc(o["tan"][i]), scores["tan"]), (hwc(o[model][i]), scores[model]),
            (hwc(o["ground_truth"][i]), "") if proto == "A" else (None, "(no ground truth)")]


# ------------------------------------------------------------------------------------------------- CLI
def default_checkpoint() -> Path:
    """runs/quick/checkpoint.pt when a quick run left one, else the shipped checkpoint."""
    quick = default_out("quick") / "checkpoint.pt"
    return quick if quick.is_file() else SHIPPED


def json_path(ckpt: Path) -> Path:
    """Where ``python -m pnlib eval`` writes a checkpoint's numbers: ``runs/eval/<checkpoint stem>.json``."""
    stem = ckpt.stem if ckpt.stem != "checkpoint" else f"{ckpt.parent.name}_checkpoint"
    return RUNS_DIR / "eval" / f"{stem}.json"
