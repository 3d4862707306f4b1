"""Pairing a target palette with the photo's own palette P_s (issue 28): what the pairing costs the output.

    python benchmarks/pairing.py [--size 288 432] [--data bundled,DIR,...]

``pnlib.recolor`` pairs a user's target palette with the photo's palette P_s before the palette head
reads both (``match=True``, :func:`pnlib.palette.match_palette`). This script measures that pairing on
the held-out photos of ``--data`` (the bundled pair always; by default also the "More photos" folders
under ~/pn-photos when they exist, as in the README), with the shipped model at ``--size`` and one
torch thread:

1. **Hue shifts** (§4.1, eq. 10; protocol A of pnlib.evaluate): each held-out photo × t = 0, 20, ...,
   340; the target is hue_shift(P_s, t) as sRGB (clipped to the gamut, as a user gives it), shuffled
   by a seeded permutation; ground truth hue_shift(photo, t). Mean ΔE00 to the truth for each pairing:
   the new default, the old default (least total ΔE00 only), the order kept (the unshuffled target:
   the correct pairing), and the ideas measured beside them.
2. **Designer palettes** (protocol B's targets: palettes of other photos and seeded random ones):
   adherence at equal lightness (pnlib.metrics.palette_distance of the output's extracted palette
   against the target, chroma and hue only; as pnlib.evaluate) and plain adherence, per pairing.
3. **Pairing only** (no network): how often each pairing pairs a shuffled hue shift as the shift, and
   the gate's statistic (best turn's total ΔE00 / plain pairing's) on the training photos, where
   ROTATION_GATE was chosen, and on the held-out ones.

Prints Markdown tables; the numbers go to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pnlib import palette as pal
from pnlib.color import denormalize_lab, hue_shift, lab_to_rgb, normalize_lab, rgb_to_lab
from pnlib.data import SHIFTS, load_split, validation_set
from pnlib.inference import load_model
from pnlib.metrics import display_lab, per_image_delta_e00
from pnlib.protocols import _adherence, _palettenet, protocol_b_targets

MORE = [Path.home() / "pn-photos" / d for d in ("lomiri", "lxqt", "palapeli", "tuxpaint")]
SEED = 28


# ------------------------------------------------------------------------------------------ pairings
def _lab(p: torch.Tensor) -> np.ndarray:
    return rgb_to_lab(p.double(), dim=-1).numpy()


def _reorder(target: torch.Tensor, cols) -> torch.Tensor:
    """``target`` reordered so that colour i pairs with colour i of the source (source i -> cols[i])."""
    return target[torch.as_tensor(np.asarray(cols))]


def pair_lightness(source, target, kL: float = 0.1) -> torch.Tensor:
    """Idea: least total CIEDE2000 with lightness weighted 1/kL times (a hue shift keeps L)."""
    from scipy.optimize import linear_sum_assignment
    from skimage.color import deltaE_ciede2000
    a, b = _lab(source), _lab(target)
    A = np.repeat(a[:, None], len(b), 1)
    cost = deltaE_ciede2000(A, np.broadcast_to(b[None], A.shape), channel_axis=-1, kL=kL)
    rows, cols = linear_sum_assignment(cost)
    return _reorder(target, cols[np.argsort(rows)])


def pair_always_turn(source, target) -> torch.Tensor:
    """Idea: always the best hue turn's pairing (no gate)."""
    return _reorder(target, pal.find_hue_rotation(source, target)[0])


def pair_gate_then_lightness(source, target) -> torch.Tensor:
    """Idea: the new default's turn test; a target that is no turn is paired with L weighted (kL = 0.1)."""
    cols, total, _, _ = pal.find_hue_rotation(source, target)
    rows, plain_cols, cost = pal.match_colors(_lab(source), _lab(target))
    if total < pal.ROTATION_GATE * float(cost[rows, plain_cols].sum()):
        return _reorder(target, cols)
    return pair_lightness(source, target)


PAIRINGS = {
    "new default (turn search + gate)": lambda s, t: pal.match_palette(s, t),
    "old default (least total ΔE00)": lambda s, t: pal.match_palette(s, t, rotation=False),
    "always the best turn (no gate)": pair_always_turn,
    "least ΔE00, L weighted ×10 (kL = 0.1)": pair_lightness,
    "turn search + gate, else L weighted ×10": pair_gate_then_lightness,
}


def _turned(p: torch.Tensor, deg: float) -> torch.Tensor:
    """P turned by eq. (10), as sRGB clipped to the gamut (what a user would type in)."""
    return lab_to_rgb(hue_shift(p.double(), float(deg), dim=-1), dim=-1, clip=True).float()


def _shuffle(p: torch.Tensor, seed: int) -> torch.Tensor:
    return p[torch.randperm(len(p), generator=torch.Generator().manual_seed(seed))]


# ------------------------------------------------------------------------------------------ the network
class _Outputs:
    """The palette head on one photo, one output per distinct (paired) target: equal pairings reuse it."""

    def __init__(self, model, I_s: torch.Tensor, P_s: torch.Tensor):
        self.model, self.I_s, self.P_s, self.cache = model, I_s, pal.palette_lab_norm(P_s), {}

    def __call__(self, targets: list[torch.Tensor]) -> list[torch.Tensor]:
        todo = [t for t in {t.numpy().tobytes(): t for t in targets}.values() if t.numpy().tobytes() not in self.cache]
        if todo:
            n = len(todo)
            out = _palettenet(self.model, self.I_s.expand(n, -1, -1, -1), pal.palette_lab_norm(torch.stack(todo)),
                              self.P_s[None].expand(n, -1, -1))
            for t, o in zip(todo, out, strict=True):
                self.cache[t.numpy().tobytes()] = o
        return [self.cache[t.numpy().tobytes()] for t in targets]


def hue_shift_errors(model, val_pairs, size) -> dict:
    """Per pairing (and "order kept", "identity"): per-photo lists of the 18 tuples' ΔE00 to the truth."""
    names = ["order kept", *PAIRINGS, "identity (no recolouring)"]
    errs = {k: [] for k in names}
    for v, pair in enumerate(val_pairs):
        val = validation_set([pair], size=size)
        I_s, truth = val["I_s"][:1], display_lab(denormalize_lab(val["I_t"]).double())
        net = _Outputs(model, I_s, pair.palette.float())
        P_s = pair.palette.float()
        targets = {k: [] for k in names[:-1]}
        for k, t in enumerate(SHIFTS):
            T = _turned(P_s, t)
            shuffled = _shuffle(T, SEED * 1000 + 18 * v + k)
            targets["order kept"].append(T)
            for name, fn in PAIRINGS.items():
                targets[name].append(fn(P_s, shuffled))
        for name, ts in targets.items():
            out = torch.stack(net(ts))
            errs[name].append(per_image_delta_e00(display_lab(out.double()), truth, display=False).tolist())
        src = display_lab(denormalize_lab(I_s).double()).expand(len(SHIFTS), -1, -1, -1)
        errs["identity (no recolouring)"].append(per_image_delta_e00(src, truth, display=False).tolist())
    return errs


def designer_adherence(model, val_pairs, train_pairs, size) -> dict:
    """Per pairing: per-tuple (adherence, adherence at equal L) on protocol B's targets."""
    targets = protocol_b_targets(val_pairs, train_pairs)
    res = {k: {"adh": [], "adh_L": [], "photo": []} for k in PAIRINGS}
    for v, pair in enumerate(val_pairs):
        rgb = validation_set([pair], size=size)["rgb"][0]
        I_s = normalize_lab(rgb_to_lab(rgb))[None].clamp(-1, 1)
        P_s = pair.palette.float()
        net = _Outputs(model, I_s, P_s)
        P = [t[3] for t in targets if t[0] == v]
        for name, fn in PAIRINGS.items():
            outs = lab_to_rgb(torch.stack(net([fn(P_s, p) for p in P])), clip=True)
            adh, adh_L = _adherence(outs, P)
            res[name]["adh"] += adh
            res[name]["adh_L"] += adh_L
            res[name]["photo"] += [v] * len(P)
    return res


# ------------------------------------------------------------------------------------------ pairing only
def pairing_stats(pairs, label: str, offsets=(0.0, 2.5)) -> list[str]:
    """Share of shuffled hue shifts paired as the shift, per pairing; the gate's statistic on hue
    shifts the plain pairing gets wrong and on designer palettes."""
    rows = []
    right = {k: 0 for k in PAIRINGS}
    n = 0
    r_hue, r_des = [], []
    for i, p in enumerate(pairs):
        P = p.palette.float()
        for off in offsets:
            for k, t in enumerate(SHIFTS):
                T = _turned(P, t + off)
                shuffled = _shuffle(T, SEED * 7 + 1000 * i + k + int(10 * off))
                for name, fn in PAIRINGS.items():
                    right[name] += torch.equal(fn(P, shuffled), T)
                plain = pal.match_palette(P, shuffled, rotation=False)
                if not torch.equal(plain, T):
                    r_hue.append(_ratio(P, shuffled))
                n += 1
        others = [q.palette.float() for q in pairs if q.name != p.name][:6] + list(pal.random_palettes(6, seed=i))
        r_des += [_ratio(P, q) for q in others]
    rows.append(f"| {label} | {len(pairs)} | " + " | ".join(f"{100 * right[k] / n:.1f} %" for k in PAIRINGS)
                + f" | {max(r_hue):.3f} ({len(r_hue)}) | {min(r_des):.3f} ({len(r_des)}) |")
    return rows


def _ratio(P, T) -> float:
    rows, cols, cost = pal.match_colors(_lab(P), _lab(T))
    return pal.find_hue_rotation(P, T)[1] / max(float(cost[rows, cols].sum()), 1e-12)


def _time_ms(fn, n=50) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


# ------------------------------------------------------------------------------------------ main
def _mean(x) -> float:
    return statistics.fmean(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(288, 432), metavar=("H", "W"))
    ap.add_argument("--photos", choices=("held-out", "train"), default="held-out",
                    help="measure on the held-out photos (the report) or on the training photos (choosing settings)")
    ap.add_argument("--data", default=None,
                    help="photo sources (default: bundled, plus ~/pn-photos/{lomiri,lxqt,palapeli,tuxpaint} "
                         "when present)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = args.data or ",".join(["bundled"] + [str(d) for d in MORE if d.is_dir()])
    train, val = load_split(data)
    if args.photos == "train":   # the training photos play the held-out role; their targets: each other's
        train, val = val, train
    model = load_model(device="cpu")
    bundled = [i for i, p in enumerate(val) if "/" not in p.name or p.name.startswith("bundled/")]
    what = "held-out" if args.photos == "held-out" else "training"
    sets = [(f"the {len(bundled)} bundled {what} photos", bundled)]
    if len(val) > len(bundled):
        sets.append((f"the {len(val)} {what} photos", list(range(len(val)))))
    size = tuple(args.size)
    print(f"data: {data}\n{what}: {', '.join(p.name for p in val)}\nsize {size[0]}×{size[1]}, shipped model, "
          f"1 torch thread\n")

    t0 = time.perf_counter()
    errs = hue_shift_errors(model, val, size)
    print("## Hue shifts: target = hue_shift(P_s, t) shuffled, ΔE00 to hue_shift(photo, t) ↓  "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print("| pairing | " + " | ".join(f"{name}: all t | t = 140-280°" for name, _ in sets) + " |")
    print("|---|" + "---:|---:|" * len(sets))
    far = [k for k, t in enumerate(SHIFTS) if 140 <= t <= 280]
    for name, per_photo in errs.items():
        cells = []
        for _, idx in sets:
            cells.append(f"{_mean([e for i in idx for e in per_photo[i]]):.2f}")
            cells.append(f"{_mean([per_photo[i][k] for i in idx for k in far]):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    new, kept = errs[list(PAIRINGS)[0]], errs["order kept"]
    for label, idx in sets:
        worst = max(idx, key=lambda i: _mean(new[i]) - _mean(kept[i]))
        print(f"\n{label}: new default / order kept = "
              f"{_mean([e for i in idx for e in new[i]]) / _mean([e for i in idx for e in kept[i]]):.3f}; "
              f"largest gap on one photo: {val[worst].name} {_mean(new[worst]):.2f} against {_mean(kept[worst]):.2f}")

    t0 = time.perf_counter()
    adh = designer_adherence(model, val, train, size)
    print(f"\n## Designer palettes (protocol B's targets): adherence ΔE00 ↓  ({time.perf_counter() - t0:.0f} s)\n")
    print("| pairing | " + " | ".join(f"{name}: at equal L | minus the old default's (± s.e.) | plain "
                                    "| tuples paired unlike the old default" for name, _ in sets) + " |")
    print("|---|" + "---:|---:|---:|---:|" * len(sets))
    old = adh[list(PAIRINGS)[1]]
    for name, r in adh.items():
        cells = []
        for _, idx in sets:
            m = [j for j, v in enumerate(r["photo"]) if v in idx]
            changed = sum(r["adh"][j] != old["adh"][j] or r["adh_L"][j] != old["adh_L"][j] for j in m)
            d = [r["adh_L"][j] - old["adh_L"][j] for j in m]
            se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else 0.0
            cells += [f"{_mean([r['adh_L'][j] for j in m]):.3f}", f"{_mean(d):+.3f} ± {se:.3f}",
                      f"{_mean([r['adh'][j] for j in m]):.3f}", f"{changed} of {len(m)}"]
        print(f"| {name} | " + " | ".join(cells) + " |")

    if args.photos == "train":
        return
    t0 = time.perf_counter()
    print("\n## Pairing only: shuffled hue shifts (t = 0-340° and 2.5° off) paired as the shift; gate statistic\n")
    print("| photos | n | " + " | ".join(PAIRINGS) + " | turn/plain, hue shifts the plain pairing gets wrong: max (n) "
          "| turn/plain, designer palettes: min (n) |")
    print("|---|---:|" + "---:|" * (len(PAIRINGS) + 2))
    for row in pairing_stats(train, "training (where the gate was chosen)") + pairing_stats(val, "held out"):
        print(row)
    P = val[0].palette.float()
    T = _shuffle(_turned(P, 200), 0)
    print(f"\n({time.perf_counter() - t0:.0f} s) match_palette per call: "
          f"{_time_ms(lambda: pal.match_palette(P, T)):.1f} ms with the turn search, "
          f"{_time_ms(lambda: pal.match_palette(P, T, rotation=False)):.1f} ms without; "
          f"ROTATION_GATE = {pal.ROTATION_GATE}")


if __name__ == "__main__":
    main()
