"""The evaluation protocols: PaletteNet against Chang et al. 2015 on held-out photos (§4.1, §4.5, Fig. 8, 9).

The paper compares with Chang et al. [3] by showing pictures (Fig. 8; Fig. 9 also beside a designer's
Photoshop edits); it gives no number. Here two protocols turn the comparison into numbers, on photos
the model never trained on (the validation split of :func:`pnlib.data.split_pairs`). Every colour
difference is CIEDE2000 of what a screen shows (:mod:`pnlib.metrics`: LAB -> sRGB clipped -> LAB).

**Protocol A, with ground truth** (the paper's validation construction, §4.1: 50 photos × 18 = 900).
Each held-out pair (I_j, P_j) × the 18 hue shifts t = 0, 20, ..., 340 (eq. 10):
I_s = I_j, P_t = hue_shift(P_j, t), ground truth I_t = hue_shift(I_j, t) (:func:`pnlib.data.validation_set`).
Per method: the mean ΔE00 of each output against I_t (per tuple, over its pixels), then the mean and
the median over the tuples; and the mean |ΔL| against the source (luminance kept?). Methods:

* ``identity``: the source unchanged (the "do nothing" bar; 0 at t = 0, large at t = 180°);
* ``chang``: Chang et al. 2015 (:func:`pnlib.baselines.chang_recolor`), given the *source* palette
  P_s = P_j (the pair's own extracted palette) and the target P_t. Colour i of P_t is
  hue_shift(colour i of P_j, t), so the two palettes correspond colour by colour, exactly the
  correspondence a Chang user sets by hand. (Chang's own palette, :func:`~pnlib.baselines.chang_palette`,
  would give Chang a different target than PaletteNet's P_t; with P_j both methods get one target.)
* ``tan``: Tan, Echevarria, Gingold 2018 (:func:`pnlib.baselines.tan_layers`; after PaletteNet, so
  not in §4.5, but one newer work compares against). It recolours with *its own*
  palette (the simplified convex hull of the pixels), so it gets the same edit in that palette:
  each of its colours hue-shifted by t (eq. 10, clipped to sRGB). Its layers are computed once per
  photo (:func:`tan_decompositions`; time reported apart), each recolouring is then a weighted sum;
* the model, under a key that names whose it is (:data:`MODEL_KEYS`: ``paper`` for PaletteNet's own
  direct head, ``ours`` for our palette head, ``ours_affine``): G(I_s, P_t) (eq. 2); the palette head
  also reads P_s = P_j, as Chang does;
* ``oracle``: the exact hue shift (:func:`pnlib.baselines.oracle`): ΔE00 ~0 by construction; what is
  left is the metric's floor (float rounding, the [-1, 1] clamp of the stored I_t, display clipping).

Chang et al. here is our reimplementation from their paper's description (:mod:`pnlib.baselines`), not
their code. A hue shift is one global colour map, which Chang's per-colour translation approximates;
the palette head's per-colour transform models a rotation of the ab plane exactly, so protocol A is,
by construction, the palette head's best case.

**Protocol B, no ground truth** (Fig. 8, 9: a photo and somebody else's palette). Each held-out photo ×
fixed target palettes: the palettes of up to ``n_photo`` other photos (the other held-out photos
first, then training photos in name order when there are too few held-out ones: with the eight bundled
photos, 2 are held out, so 1 held-out + 5 training palettes; a training photo's *palette* is not its
image, and only hue-shifted copies of it were seen in training), plus ``n_random`` seeded random
palettes (six random LCh colours inside the sRGB gamut: the "extreme" palettes of Fig. 9). Per method:
palette adherence (:func:`pnlib.metrics.palette_adherence`: the output's extracted palette against the
target, as a set, ΔE00; also at equal lightness), mean |ΔL| against the source, and the share of stray
edges (:func:`pnlib.metrics.stray_edges`: posterisation, bleeding). Chang and the palette head need a
source -> target correspondence: the target's colours are matched one-to-one to P_j by the least total
ΔE00 (:func:`pnlib.palette.match_palette`); Tan et al. pair the target with their own palette the
same way. Every model gets the target in that matched order: the
paper's head was trained on targets ordered like the photo's own palette (a hue shift keeps the order),
so an arbitrary order would be unfair to it.

**Own palette** (:func:`protocol_own`): each held-out photo recoloured to its own palette, ΔE00 to the
source. :func:`extreme_palettes` runs Fig. 9's one photo × :data:`EXTREME_PALETTES`, both methods, with
scores. :mod:`pnlib.evaluate` runs the protocols together, times them and reports them. Imports data,
metrics, baselines and the model; never the training loop.
"""
from __future__ import annotations

import statistics

import torch

from .baselines import TanLayers, chang_recolor, oracle, tan_layers
from .color import denormalize_lab, hue_shift, lab_to_rgb, normalize_lab, rgb_to_lab, to_uint8
from .config import Stopwatch, torch_threads
from .data import SHIFTS, validation_set
from .metrics import display_lab, luminance_error, palette_distance, per_image_delta_e00, stray_edges
from .model import PaletteNet, recolor_batched
from .palette import extract_palette, format_palette, match_palette, palette_lab_norm, parse_palette, random_palettes

#: The evaluated model's method key, by head: every table row and JSON key names whose model it is.
MODEL_KEYS = {"direct": "paper", "palette": "ours", "affine": "ours_affine"}
#: What a report or a figure calls each method.
LABELS = {"identity": "identity (the source unchanged)", "chang": "Chang et al. 2015 (our reimplementation)",
          "tan": "Tan et al. 2018 (our reimplementation; after the paper)",
          "oracle": "oracle (the exact hue shift)", "paper": "PaletteNet (the paper's)",
          "ours": "ours: palette head (not in the paper)", "ours_affine": "ours: affine head (not in the paper)"}


def model_key(model: PaletteNet) -> str:
    """The method key of ``model`` in every result: "paper" (direct head), "ours" or "ours_affine"."""
    return MODEL_KEYS[model.head]


def methods_a(key: str) -> tuple:
    """Protocol A's methods with the model under ``key`` (:func:`model_key`)."""
    return ("identity", "chang", "tan", key, "oracle")


def methods_b(key: str) -> tuple:
    """Protocol B's (and the own palette's) methods with the model under ``key``."""
    return ("identity", "chang", "tan", key)

#: Pixels (a seeded subsample) that palette adherence's k-means clusters: 4× fewer than
#: extract_palette's default, for speed; six clusters are well estimated from 5,000 pixels.
ADHERENCE_PIXELS = 5000
_BATCH = 6  # PaletteNet images per forward pass
#: Fig. 9's kind of target (§4.5: "more extreme target palettes on a single image"; the paper does not
#: list its palettes): fixed, hand-picked palettes far from any photo's, for :func:`extreme_palettes`.
EXTREME_PALETTES = {
    "all grey": "#1c1c1c,#3f3f3f,#636363,#878787,#ababab,#d0d0d0",      # no chroma at all, L 11-84
    "one blue ×6": ",".join(["#0047ff"] * 6),                           # one saturated colour repeated
    "complementary": "#3a1a6e,#6c3bc4,#b49af0,#6b5a00,#c9a800,#fff07a",  # violet and yellow, 3 L each
    "very dark": "#050505,#1a0f0a,#0a1a12,#0d0d24,#241010,#1e1e1e",      # L below 12
    "neon": "#ff00ff,#00ffff,#39ff14,#ffff00,#ff2a2a,#3d5afe",           # the most saturated sRGB colours
}


# ------------------------------------------------------------------------------------------- helpers
def _palettenet(model: PaletteNet, I_s: torch.Tensor, P_t: torch.Tensor, P_s: torch.Tensor | None = None
                ) -> torch.Tensor:
    """G(I_s, P_t[, P_s]), normalised LAB in -> Î_t = [I^L_s, Îab_t], raw LAB on the CPU (P_s: palette head only)."""
    return denormalize_lab(recolor_batched(model, I_s, P_t, _BATCH, P_s))


def _stats(values) -> dict:
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "median": statistics.median(v)}


_TAN_CACHE: dict = {}


def tan_decompositions(val: dict) -> list[TanLayers]:
    """Tan et al. 2018's layers of each held-out photo ``val["rgb"]`` (:func:`pnlib.baselines.tan_layers`).

    Computed once per photo and size and kept for the session (a few seconds each at 288×432; the three
    protocols and repeated evaluations of several models reuse them); each carries its ``seconds``.
    """
    out = []
    for name, rgb in zip(val["names"], val["rgb"], strict=True):
        key = (name, tuple(rgb.shape), float(rgb.double().sum()))
        if key not in _TAN_CACHE:
            if len(_TAN_CACHE) > 64:
                _TAN_CACHE.clear()
            _TAN_CACHE[key] = tan_layers(rgb)
        out.append(_TAN_CACHE[key])
    return out


def _tan_shifted(layers: TanLayers, degrees: float) -> torch.Tensor:
    """Tan et al.'s palette turned by eq. (10)'s hue shift, as sRGB a user could pick (clipped)."""
    return lab_to_rgb(hue_shift(layers.palette, float(degrees), dim=-1), dim=-1, clip=True)


# ------------------------------------------------------------------------------------------ protocol A
def _score_a(out: dict, I_s, I_t, n: int, seconds: dict) -> tuple[dict, dict]:
    """Per method: the per-tuple ΔE00 to I_t (chunks) and the mean |ΔL| to I_s of each chunk of ``n``.

    Scored one held-out photo (``n`` = 18 tuples) at a time, in float64: memory stays bounded. Each side
    is mapped to its displayed colour once (display_lab), then compared as is: the same numbers as
    per_image_delta_e00(out, I_t) and luminance_error(out, I_s, display=True), without redoing I_t.
    The time of each method's scoring is added to ``seconds``.
    """
    de = {m: [] for m in out}
    dL = {m: [] for m in out}
    for c in range(0, len(I_s), n):
        shown_t, shown_s = display_lab(I_t[c:c + n].double()), display_lab(I_s[c:c + n].double())
        for name in out:
            with Stopwatch() as t:
                shown = display_lab(out[name][c:c + n].double())
                de[name].append(per_image_delta_e00(shown, shown_t, display=False))
                dL[name].append(luminance_error(shown, shown_s))
            seconds[name] += t.s
    return de, dL


def protocol_a(model: PaletteNet, val_pairs, size, keep_outputs: bool = False, progress: bool = False,
               val: dict | None = None) -> dict:
    """Held-out photos × the 18 hue shifts, against the ground truth I_t (module docstring).

    ``val``: ``validation_set(val_pairs, size)`` when the caller already has it.
    """
    val = val if val is not None else validation_set(val_pairs, size=size)
    n = len(SHIFTS)
    I_s, I_t = denormalize_lab(val["I_s"]), denormalize_lab(val["I_t"])   # raw LAB (N, 3, H, W)
    P_t_rgb = lab_to_rgb(denormalize_lab(val["P_t"], dim=-1), dim=-1, clip=True)   # (N, 6, 3)
    src_rgb = val["rgb"]                                                  # (V, 3, H, W)
    out, seconds = {}, {}

    def run(name, fn):
        with Stopwatch() as t:
            out[name] = fn()
        seconds[name] = t.s

    run("identity", lambda: I_s)
    run("chang", lambda: rgb_to_lab(torch.stack([
        chang_recolor(src_rgb[i // n], val_pairs[i // n].palette, P_t_rgb[i]) for i in range(len(I_s))])))
    tan = tan_decompositions(val)       # its time is reported apart (timing.tan_layers_s), not per tuple
    run("tan", lambda: rgb_to_lab(torch.stack([
        tan[i // n].recolor(_tan_shifted(tan[i // n], val["shift_t"][i])) for i in range(len(I_s))])))
    key = model_key(model)
    run(key, lambda: _palettenet(model, val["I_s"], val["P_t"], val["P_s"]))
    run("oracle", lambda: torch.cat([oracle(src_rgb[v:v + 1].expand(n, -1, -1, -1), val["shift_t"][v * n:(v + 1) * n])
                                     for v in range(len(val_pairs))]))
    de, dL = _score_a(out, I_s, I_t, n, seconds)
    methods = {}
    for name in methods_a(key):
        d = torch.cat(de[name])
        s = _stats(d)
        methods[name] = {"mean_de00": s["mean"], "median_de00": s["median"],
                         "mean_abs_dL": statistics.fmean(dL[name]),   # equal-sized chunks: mean of means
                         "per_tuple_de00": [round(float(x), 4) for x in d], "seconds": seconds[name]}
        if progress:
            print(f"  protocol A  {name:<11} mean ΔE00 {s['mean']:6.2f}  ({seconds[name]:.1f} s)")
    res = {"n_tuples": len(I_s), "shifts": list(SHIFTS),
           "tuples": [{"image": val["names"][int(val["j"][i])], "shift": float(val["shift_t"][i])}
                      for i in range(len(I_s))],
           "source_palette": "the pair's extracted palette P_j (pnlib.data); P_t = hue_shift(P_j, t), colour by colour",
           "methods": methods}
    if keep_outputs:
        to_rgb = lambda lab: to_uint8(lab_to_rgb(lab, clip=True))  # noqa: E731
        res["outputs"] = {"source": to_uint8(src_rgb), "source_palette": torch.stack([p.palette for p in val_pairs]),
                          "target_palette": P_t_rgb, "ground_truth": to_rgb(I_t),
                          **{m: to_rgb(out[m]) for m in ("chang", "tan", key)}}
    return res


# ------------------------------------------------------------------------------------------ protocol B
def protocol_b_targets(val_pairs, train_pairs, n_photo: int = 6, n_random: int = 6, seed: int = 0) -> list:
    """The target palettes of each held-out photo: ``[(image index, target name, kind, (6, 3) RGB)]``.

    ``kind``: "held-out" (another held-out photo's palette), "train" (a training photo's, used when there
    are fewer than ``n_photo`` other held-out photos) or "random" (:func:`random_palettes`).
    """
    rand = random_palettes(n_random, seed=seed) if n_random else torch.zeros(0, 6, 3)
    targets = []
    for v, p in enumerate(val_pairs):
        others = [(q.name, "held-out", q.palette) for q in val_pairs if q.name != p.name]
        others += [(q.name, "train", q.palette) for q in train_pairs]
        targets += [(v, name, kind, pal.float()) for name, kind, pal in others[:n_photo]]
        targets += [(v, f"random {r}", "random", rand[r]) for r in range(n_random)]
    return targets


def protocol_b(model: PaletteNet, val_pairs, train_pairs, size, n_photo: int = 6, n_random: int = 6,
               seed: int = 0, keep_outputs: bool = False, progress: bool = False, val: dict | None = None) -> dict:
    """Held-out photos × fixed target palettes, no ground truth: palette adherence and |ΔL| (module docstring).

    ``val``: ``validation_set(val_pairs, size)`` when the caller already has it (only its resized
    photos ``rgb`` and ``names`` are used).
    """
    val = val if val is not None else validation_set(val_pairs, size=size)
    src_rgb = val["rgb"]                                                   # (V, 3, H, W)
    src_lab = rgb_to_lab(src_rgb)
    targets = protocol_b_targets(val_pairs, train_pairs, n_photo=n_photo, n_random=n_random, seed=seed)
    idx = [v for v, *_ in targets]
    P = torch.stack([t[3] for t in targets])                               # (M, 6, 3) RGB
    rgb_out, seconds = _outputs_b(model, val_pairs, src_rgb, src_lab, idx, P, tan_decompositions(val))
    methods = _score_b(rgb_out, P, src_lab[idx], seconds, progress)
    kinds = [t[2] for t in targets]
    res = {"n_tuples": len(targets),
           "tuples": [{"image": val["names"][v], "target": name, "kind": kind, "palette": format_palette(pal)}
                      for v, name, kind, pal in targets],
           "targets_per_image": {k: kinds.count(k) // max(len(val_pairs), 1) for k in ("held-out", "train", "random")},
           "chang_matching": "target colours matched one-to-one to the source palette P_j, least total ΔE00",
           "methods": methods}
    if keep_outputs:
        res["outputs"] = {"source": to_uint8(src_rgb), "source_palette": torch.stack([p.palette for p in val_pairs]),
                          "target_palette": P, "image_index": torch.tensor(idx),
                          **{m: to_uint8(rgb_out[m]) for m in ("chang", "tan", model_key(model))}}
    return res


def _outputs_b(model: PaletteNet, val_pairs, src_rgb, src_lab, idx: list, P: torch.Tensor, tan: list
               ) -> tuple[dict, dict]:
    """Protocol B's RGB outputs per method for held-out photos ``idx`` and targets ``P``, and their times
    (``tan``: each photo's :class:`~pnlib.baselines.TanLayers`; the target paired with its own palette)."""
    rgb_out, seconds = {}, {}
    with Stopwatch() as t:
        rgb_out["identity"] = src_rgb[idx]
    seconds["identity"] = t.s
    with Stopwatch() as t:
        rgb_out["chang"] = torch.stack([chang_recolor(src_rgb[v], val_pairs[v].palette,
                                                      match_palette(val_pairs[v].palette, P[i]))
                                        for i, v in enumerate(idx)])
    seconds["chang"] = t.s
    with Stopwatch() as t:
        rgb_out["tan"] = torch.stack([tan[v].recolor(match_palette(tan[v].palette, P[i])) for i, v in enumerate(idx)])
    seconds["tan"] = t.s
    with Stopwatch() as t:
        I_s = normalize_lab(src_lab[idx]).clamp(-1, 1)
        P_s = torch.stack([val_pairs[v].palette for v in idx])
        # Every model gets the target matched to P_s, as Chang does (and as pnlib.recolor does).
        P_m = torch.stack([match_palette(P_s[i], P[i]) for i in range(len(idx))])
        rgb_out[model_key(model)] = lab_to_rgb(_palettenet(model, I_s, palette_lab_norm(P_m), palette_lab_norm(P_s)),
                                               clip=True)
    seconds[model_key(model)] = t.s
    return rgb_out, seconds


def _adherence(images, P) -> tuple[list, list]:
    """Palette adherence of each RGB output to its target in ``P`` (= palette_adherence, the output's
    palette extracted once), and the same at equal lightness."""
    shown = [extract_palette(rgb, max_pixels=ADHERENCE_PIXELS) for rgb in images]
    return ([palette_distance(e, p) for e, p in zip(shown, P, strict=True)],
            [palette_distance(e, p, equal_lightness=True) for e, p in zip(shown, P, strict=True)])


def _score_b(rgb_out: dict, P: torch.Tensor, src_lab: torch.Tensor, seconds: dict, progress: bool) -> dict:
    """Protocol B's numbers per method: adherence (and at equal L), |ΔL|, stray edges; adds the scoring
    time to ``seconds`` (``recolor_seconds``: the outputs' time alone)."""
    methods = {}
    for name in rgb_out:
        recolor_s = seconds[name]
        with Stopwatch() as t:
            adh, adh_L = _adherence(rgb_out[name], P)
            out_lab = rgb_to_lab(rgb_out[name])
            dL = luminance_error(out_lab, src_lab, display=True)
            stray = stray_edges(out_lab, src_lab)
        seconds[name] += t.s
        s = _stats(adh)
        methods[name] = {"adherence": s["mean"], "median_adherence": s["median"], "mean_abs_dL": dL,
                         "adherence_equal_L": statistics.fmean(adh_L), "stray_edges": float(stray.mean()),
                         "per_tuple_adherence": [round(a, 4) for a in adh],
                         "per_tuple_adherence_equal_L": [round(a, 4) for a in adh_L],
                         "per_tuple_stray_edges": [round(float(x), 4) for x in stray], "seconds": seconds[name],
                         "recolor_seconds": recolor_s}
        if progress:
            print(f"  protocol B  {name:<11} adherence ΔE00 {s['mean']:6.2f}  ({seconds[name]:.1f} s)")
    return methods


# -------------------------------------------------------------------------------- extreme palettes
def extreme_palettes(model: PaletteNet, rgb: torch.Tensor, source_palette, palettes=None,
                     threads: int | None = 1) -> dict:
    """Fig. 9 (§4.5): one photo × extreme target palettes, Chang et al. beside the model, with scores.

    ``rgb``: ``(3, H, W)`` in [0, 1]; ``source_palette``: its ``(6, 3)`` RGB palette P_s (Chang's
    source, and the palette head's); ``palettes``: ``{name: palette}`` (default :data:`EXTREME_PALETTES`).
    As in protocol B, each target is matched one-to-one to P_s by least total ΔE00 (Chang needs the
    correspondence; every model gets it in that order). Returns ``names``, ``key`` (the model's
    :func:`model_key`), ``targets`` ((N, 6, 3) RGB, matched order), ``chang`` and ``<key>`` (N, 3, H, W)
    RGB, and per method m the lists ``m_adherence`` and ``m_adherence_equal_L`` (palette adherence
    ΔE00, also at equal lightness, as in protocol B) and ``m_dL`` (mean |ΔL| to the source, as displayed).
    ``threads``: torch CPU threads while it runs, as in :func:`evaluate` (1: much faster on a busy CPU).
    """
    with torch_threads(threads):
        return _extreme_palettes(model, rgb, source_palette=source_palette,
                                 palettes=palettes if palettes is not None else EXTREME_PALETTES)


def _extreme_palettes(model: PaletteNet, rgb: torch.Tensor, *, source_palette, palettes: dict) -> dict:
    P_s = source_palette.detach().cpu().float()
    P = torch.stack([parse_palette(p) for p in palettes.values()])
    P_m = torch.stack([match_palette(P_s, p) for p in P])
    src_lab = rgb_to_lab(rgb)
    out = {"names": list(palettes), "key": model_key(model), "targets": P_m,
           "chang": torch.stack([chang_recolor(rgb, P_s, p) for p in P_m])}
    I_s = normalize_lab(src_lab).clamp(-1, 1).expand(len(P), -1, -1, -1)
    key = model_key(model)
    lab = _palettenet(model, I_s, palette_lab_norm(P_m), palette_lab_norm(P_s).expand(len(P), -1, -1))
    out[key] = lab_to_rgb(lab, clip=True)
    for m in ("chang", key):
        out[m + "_adherence"], out[m + "_adherence_equal_L"] = _adherence(out[m], P)
        out[m + "_dL"] = [luminance_error(rgb_to_lab(o), src_lab, display=True) for o in out[m]]
    return out


# ------------------------------------------------------------------------------------- own palette
def protocol_own(model: PaletteNet, val: dict, progress: bool = False) -> dict:
    """Each held-out photo recoloured to *its own* palette: a recolouring must hand the photo back.

    The palette is the one a user would take from the photo (:func:`pnlib.palette.extract_palette` of
    the evaluated image). Chang et al. are given it as source and target, Tan et al. their own palette
    as both (what is left is their decomposition's reconstruction error); PaletteNet gets it as P_t
    (and as P_s when the model reads one, which is what :func:`pnlib.recolor` extracts itself). Per
    method: mean ΔE00 of the output to the source (per photo, then the mean and the maximum).
    """
    src_rgb = val["rgb"]                                                   # (V, 3, H, W)
    src_lab = rgb_to_lab(src_rgb)
    own = torch.stack([extract_palette(x) for x in src_rgb])               # (V, 6, 3) RGB
    own_norm = palette_lab_norm(own)
    out = {"identity": src_lab,
           "chang": rgb_to_lab(torch.stack([chang_recolor(x, p, p) for x, p in zip(src_rgb, own, strict=True)])),
           "tan": rgb_to_lab(torch.stack([t.recolor(t.palette) for t in tan_decompositions(val)])),
           model_key(model): _palettenet(model, normalize_lab(src_lab).clamp(-1, 1), own_norm, own_norm)}
    methods = {}
    for name in out:
        d = per_image_delta_e00(out[name].double(), src_lab.double())
        methods[name] = {"mean_de00": float(d.mean()), "max_de00": float(d.max()),
                         "per_image_de00": [round(float(x), 4) for x in d]}
        if progress:
            print(f"  own palette {name:<11} mean ΔE00 to the source {float(d.mean()):6.2f}")
    return {"n_images": len(src_rgb), "palettes": [format_palette(p) for p in own], "methods": methods}
