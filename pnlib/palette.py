"""Colour palettes: parse, format, extract, draw.

A palette is six colours (§1: "six of the most representative colors"). Here a palette is a ``(6, 3)``
float tensor of sRGB in [0, 1] (a batch is ``(N, 6, 3)``, colour last). The network wants it in
normalised LAB (§4.2): :func:`palette_lab_norm`. A palette is hue-shifted by the same
:func:`pnlib.color.hue_shift` as an image, with ``dim=-1``.

Palettes need not come from designers: :func:`extract_palette` takes the palette of any photo by
k-means in LAB, which is what lets any photo folder be a PaletteNet dataset (pnlib.data). Two palettes
are compared colour by colour after :func:`match_colors`, the one-to-one matching with the least
total ΔE00 (Hungarian algorithm). A target palette is paired with a photo's by :func:`match_palette`:
the same matching, unless the target is a hue-turned copy of the photo's palette
(:func:`find_hue_rotation`), which is paired as the turn it is. :func:`cached_palette` keeps each photo's
extracted palette on disk (``runs/cache/palettes/``), so a training run extracts a photo's palette once.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from .color import hue_shift, lab_to_rgb, normalize_lab, rgb_to_lab
from .config import CACHE_DIR

N_COLORS = 6
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def _css_names() -> dict[str, str]:
    from matplotlib.colors import CSS4_COLORS

    return {k.lower(): v for k, v in CSS4_COLORS.items()}


def _parse_color(entry: str, i: int) -> tuple[float, float, float]:
    s = entry.strip()
    if not s:
        raise ValueError(f"palette entry {i + 1} is empty")
    m = _HEX.match(s)
    if m is None and s.lower() in _css_names():
        m = _HEX.match(_css_names()[s.lower()])
    if m is None:
        hint = "a '#rrggbb' or '#rgb' hex code" if s.startswith("#") else "a CSS colour name or a hex code"
        raise ValueError(f"palette entry {i + 1} {s!r} is not {hint}")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return tuple(int(h[k:k + 2], 16) / 255.0 for k in (0, 2, 4))


def parse_palette(x) -> torch.Tensor:
    """Anything that names six colours -> a ``(6, 3)`` float32 RGB tensor in [0, 1].

    Accepts a comma/space separated string (``"#e63946, #f1faee navy ..."``), a list of '#rrggbb', '#rgb'
    or CSS colour names, or an array/tensor of six RGB triples (floats in [0, 1] or integers 0-255).
    Raises ``ValueError`` naming the offending entry, or the count when it is not six.
    """
    if isinstance(x, str):
        parts = [p for p in re.split(r"[,\s]+", x.strip()) if p]
        if not parts:
            raise ValueError("the palette string is empty: give 6 colours, e.g. '#e63946,#f1faee,...'")
        x = parts
    if isinstance(x, (list, tuple)) and x and all(isinstance(e, str) for e in x):
        if len(x) != N_COLORS:
            raise ValueError(f"a palette needs exactly {N_COLORS} colours, got {len(x)}: {list(x)}")
        return torch.tensor([_parse_color(e, i) for i, e in enumerate(x)], dtype=torch.float32)
    return _parse_array(x)


def _parse_array(x) -> torch.Tensor:
    if isinstance(x, Iterable) and not torch.is_tensor(x) and not isinstance(x, np.ndarray):
        x = list(x)
        if any(isinstance(e, str) for e in x):
            raise ValueError("mix of strings and numbers in the palette: give six hex/CSS names or six RGB triples")
    try:
        arr = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"cannot read the palette as six RGB triples: {e}") from None
    if arr.dtype == object or arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"a palette array must have shape (6, 3), got {arr.shape}")
    if arr.shape[0] != N_COLORS:
        raise ValueError(f"a palette needs exactly {N_COLORS} colours, got {arr.shape[0]}")
    if arr.dtype.kind in "iu":
        bad = [i for i in range(N_COLORS) if (arr[i] < 0).any() or (arr[i] > 255).any()]
        if bad:
            raise ValueError(f"palette entry {bad[0] + 1} {arr[bad[0]].tolist()} is outside 0-255")
        return torch.tensor(arr / 255.0, dtype=torch.float32)
    if arr.dtype.kind != "f":
        raise ValueError(f"a palette array must hold numbers, got dtype {arr.dtype}")
    for i in range(N_COLORS):
        if not np.isfinite(arr[i]).all():
            raise ValueError(f"palette entry {i + 1} {arr[i].tolist()} is not finite")
        if (arr[i] < 0).any() or (arr[i] > 1).any():
            raise ValueError(
                f"palette entry {i + 1} {arr[i].tolist()} is outside [0, 1] "
                "(give floats in [0, 1] or integers 0-255)")
    return torch.tensor(arr, dtype=torch.float32)


def format_palette(palette) -> list[str]:
    """A ``(6, 3)`` RGB palette (anything :func:`parse_palette` takes) -> six '#rrggbb' strings."""
    p = parse_palette(palette) if not torch.is_tensor(palette) else palette.detach().cpu().float()
    rgb = (p.clamp(0, 1) * 255).round().to(torch.int64).tolist()
    return ["#{:02x}{:02x}{:02x}".format(*c) for c in rgb]


def palette_lab_norm(palette, degrees=None) -> torch.Tensor:
    """P for the network: RGB palette(s) -> normalised LAB (§4.2), colour last.

    ``palette``: anything :func:`parse_palette` takes, or an RGB tensor ``(..., k, 3)`` used as it is.
    ``degrees``: first hue-shift by eq. (10) (:func:`pnlib.color.hue_shift`), as the training data does;
    a shifted colour keeps its L and may leave the gamut a little, so the result is clamped to [-1, 1].
    """
    p = palette if torch.is_tensor(palette) and palette.ndim != 2 else parse_palette(palette)
    if degrees is None:
        return normalize_lab(rgb_to_lab(p, dim=-1), dim=-1)
    return normalize_lab(hue_shift(p, degrees, dim=-1), dim=-1).clamp_(-1.0, 1.0)


def match_colors(lab_a, lab_b, equal_lightness: bool = False):
    """The one-to-one matching of two ``(k, 3)`` LAB palettes with the least total ΔE00 (Hungarian algorithm).

    Returns ``(rows, cols, cost)``: colour ``rows[i]`` of ``lab_a`` goes with colour ``cols[i]`` of
    ``lab_b``; ``cost`` is the k × k CIEDE2000 matrix (``scipy.optimize.linear_sum_assignment``).
    ``equal_lightness``: each colour of ``lab_a`` takes the L of the ``lab_b`` colour it is compared
    with, so only chroma and hue count.
    """
    from scipy.optimize import linear_sum_assignment
    from skimage.color import deltaE_ciede2000

    a, b = np.asarray(lab_a), np.asarray(lab_b)
    A = np.repeat(a[:, None, :], len(b), axis=1)
    if equal_lightness:
        A[..., 0] = b[None, :, 0]
    cost = deltaE_ciede2000(A, np.broadcast_to(b[None], A.shape), channel_axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return rows, cols, cost


#: Hue angles (degrees) :func:`find_hue_rotation` tries: 0, 5, ..., 355. A target rotated by an angle
#: between two of them (2.5° off at worst) still pairs as the rotation (benchmarks/pairing.py).
ROTATION_STEP = 5.0
#: :func:`match_palette` pairs a target as a hue rotation of the source when the best rotation's total
#: ΔE00 is below this fraction of the plain least-ΔE00 pairing's. Chosen on the training photos' palettes
#: (benchmarks/RESULTS.md, "Pairing a target palette with the photo's"): a rotated copy of a photo's
#: palette scores at most 0.09 (angles 2.5° off the grid), another photo's or a random palette at least 0.27.
ROTATION_GATE = 0.15


def _delta_e_matrices(cand: np.ndarray, target: np.ndarray) -> np.ndarray:
    """CIEDE2000 between every colour of each ``(n, k, 3)`` LAB candidate and every colour of ``target``
    ``(k, 3)`` -> ``(n, k, k)``; entry ``[c, i, j]`` compares colour i of candidate c with target colour j."""
    from skimage.color import deltaE_ciede2000

    A = np.repeat(cand[:, :, None, :], len(target), axis=2)
    return deltaE_ciede2000(A, np.broadcast_to(target[None, None], A.shape), channel_axis=-1)


def rotated_palettes(source, degrees) -> torch.Tensor:
    """``(n, k, 3)`` LAB: the ``(k, 3)`` RGB palette ``source`` turned in hue by each of the ``n`` angles
    ``degrees``, twice: first by the hue shift of eq. (10) (:func:`pnlib.color.hue_shift`: HSV hue
    turned, L kept, as the paper's training and validation targets), then as a rotation of the ab
    plane (LCh hue turned, L and chroma kept). Rows ``[:n]`` are the first kind, ``[n:]`` the second.
    Each colour is then shown as sRGB (clipped to the gamut), as a palette given in RGB is.
    """
    src = torch.as_tensor(source).detach().cpu().double()
    deg = torch.as_tensor(degrees, dtype=torch.float64).reshape(-1)
    hsv = hue_shift(src[None].expand(len(deg), -1, -1), deg, dim=-1)
    lab = rgb_to_lab(src, dim=-1)
    t = torch.deg2rad(deg)[:, None]
    c, s = torch.cos(t), torch.sin(t)
    lch = torch.stack([lab[:, 0].expand(len(deg), -1), c * lab[:, 1] - s * lab[:, 2],
                       s * lab[:, 1] + c * lab[:, 2]], -1)
    return rgb_to_lab(lab_to_rgb(torch.cat([hsv, lch]), dim=-1, clip=True), dim=-1)


def find_hue_rotation(source, target, step: float = ROTATION_STEP):
    """The hue rotation of ``source`` that best explains ``target`` (both ``(k, 3)`` RGB), and its pairing.

    A hue shift (§4.1, eq. 10) turns every colour of a palette by one angle and keeps its lightness:
    the photo's palette P_s turned by θ and the target should then pair colour by colour. For each
    θ = 0, ``step``, ... < 360 and each kind of turn (:func:`rotated_palettes`), the one-to-one
    assignment of the turned P_s to ``target`` with the least total ΔE00 is solved (Hungarian
    algorithm, ``scipy.optimize.linear_sum_assignment``); the best of all wins. Candidates whose lower
    bound (the larger of the sums of row and of column minima) cannot beat the best so far are skipped.

    Returns ``(cols, total, degrees, kind)``: colour i of ``source`` goes with colour ``cols[i]`` of
    ``target``; ``total`` is the summed ΔE00 of those pairs (turned source against target);
    ``kind`` is ``"hue_shift"`` (eq. 10) or ``"ab_rotation"``.
    """
    from scipy.optimize import linear_sum_assignment

    deg = np.arange(0.0, 360.0, float(step))
    cand = rotated_palettes(source, deg).numpy()
    tgt = rgb_to_lab(torch.as_tensor(target).detach().cpu().double(), dim=-1).numpy()
    cost = _delta_e_matrices(cand, tgt)
    bound = np.maximum(cost.min(2).sum(1), cost.min(1).sum(1))
    best = (None, math.inf, 0)
    for c in np.argsort(bound, kind="stable"):
        if bound[c] >= best[1]:
            break
        rows, cols = linear_sum_assignment(cost[c])
        total = float(cost[c][rows, cols].sum())
        if total < best[1]:
            best = (cols, total, c)
    cols, total, c = best
    return cols, total, float(deg[c % len(deg)]), ("hue_shift" if c < len(deg) else "ab_rotation")


def match_palette(source, target, rotation: bool = True) -> torch.Tensor:
    """Reorder ``target`` (k, 3) RGB so that colour i replaces colour i of ``source`` (k, 3) RGB.

    By default, the one-to-one assignment of target to source colours with the least total ΔE00
    (:func:`match_colors`): each source colour goes to its nearest available target colour. Chang et
    al.'s transfer needs this correspondence, a user sets it by hand; PaletteNet's palette head reads
    it the same way (``pnlib.recolor(..., match=True)``).

    A hue-turned copy of the source palette (the paper's hue-shift targets, eq. 10; a user's "make it
    bluer") breaks the nearest-colour rule: turned far enough, each colour lands nearer to another
    colour's place than to its own turned self, and the least-ΔE00 pairing swaps regions (sand turns
    green, sky magenta). So with ``rotation`` the target is first tested for a global turn
    (:func:`find_hue_rotation`); when the best turned source pairs with it at less than
    :data:`ROTATION_GATE` times the plain pairing's total ΔE00, the turn's pairing is used. Any other
    palette (another photo's, a designer's, a random one) fails this test and is paired as before.
    ``rotation=False``: the plain least-ΔE00 pairing only.
    """
    src = rgb_to_lab(torch.as_tensor(source).detach().cpu().double(), dim=-1).numpy()
    tgt_rgb = torch.as_tensor(target).detach().cpu()
    tgt = rgb_to_lab(tgt_rgb.double(), dim=-1).numpy()
    rows, cols, cost = match_colors(src, tgt)
    if rotation:
        plain = float(cost[rows, cols].sum())
        turned, total, _, _ = find_hue_rotation(source, tgt_rgb)
        if total < ROTATION_GATE * plain:
            rows, cols = np.arange(len(src)), turned
    out = torch.empty_like(tgt_rgb)
    out[torch.as_tensor(rows)] = tgt_rgb[torch.as_tensor(cols)]
    return out


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centre drawn ∝ squared distance."""
    centres = [x[torch.randint(len(x), (1,), generator=gen)].squeeze(0)]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(k - 1):
        total = d2.sum()
        if total <= 0:  # fewer distinct colours than k: repeat one
            idx = torch.randint(len(x), (1,), generator=gen)
        else:
            idx = torch.multinomial(d2 / total, 1, generator=gen)
        centres.append(x[idx].squeeze(0))
        d2 = torch.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    return torch.stack(centres)


def extract_palette(rgb: torch.Tensor, k: int = N_COLORS, seed: int = 0, max_pixels: int = 20000,
                    iters: int = 30) -> torch.Tensor:
    """The palette of an image: k-means in LAB (k-means++ start, fixed seed) -> ``(k, 3)`` RGB in [0, 1].

    ``rgb``: a ``(3, H, W)`` float image in [0, 1]. At most ``max_pixels`` pixels (a seeded subsample)
    are clustered. Deterministic: the same image and seed give the same palette.

    Order: by the share of pixels each colour covers, largest first (ties: lighter first). So colour 1
    is the dominant colour of the image, as in the designer palettes of Fig. 1.
    """
    if not torch.is_tensor(rgb) or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"extract_palette wants a (3, H, W) RGB tensor, got {getattr(rgb, 'shape', type(rgb))}")
    gen = torch.Generator().manual_seed(seed)
    px = rgb.detach().cpu().reshape(3, -1)
    if px.shape[1] > max_pixels:  # subsample first: only the clustered pixels are converted to LAB
        px = px[:, torch.randperm(px.shape[1], generator=gen)[:max_pixels]]
    lab = rgb_to_lab(px.double(), dim=0).T
    centres = _kmeans_pp(lab, k, gen)
    # A few tensor ops per iteration, each on all pixels (their count, not their arithmetic, is the cost):
    # argmin_j |x - c_j|² = argmin_j (|c_j|² - 2 c_j·x) as one (k, n) matrix product and a minimum over
    # its outer dimension; the sums and counts per cluster as one weighted bincount over rows (L, a, b, 1).
    # Same assignments and sums as the full distances and index_add_, about twice as fast on 2 CPU
    # threads (benchmarks/RESULTS.md, "Where a student waits"). Stops when no pixel changes cluster.
    channels = lab.T.contiguous()                                                 # (3, n)
    rows = torch.cat([channels, torch.ones_like(channels[:1])]).flatten()         # (L, a, b, 1), (4n,)
    offsets = torch.arange(4)[:, None] * k                                        # row r -> bins r*k ...
    nearest = lambda c: torch.addmm(c.square().sum(1, keepdim=True), c, channels, alpha=-2).min(0).indices  # noqa: E731
    assign = nearest(centres)
    for _ in range(iters):
        stats = torch.bincount((assign + offsets).flatten(), weights=rows, minlength=4 * k).view(4, k)
        counts = stats[3]
        centres = torch.where(counts[:, None] > 0, stats[:3].T / counts.clamp_min(1)[:, None], centres)  # empty: keep
        new = nearest(centres)
        if torch.equal(new, assign):
            break
        assign = new
    counts = torch.bincount(assign, minlength=k)
    order = sorted(range(k), key=lambda j: (-int(counts[j]), -float(centres[j, 0])))
    return lab_to_rgb(centres[order], dim=-1, clip=True).float()


#: Random LCh palettes: L, C ranges (hue uniform); colours outside the sRGB gamut are redrawn.
RANDOM_L, RANDOM_C = (25.0, 90.0), (15.0, 75.0)


def random_palettes(n: int, k: int = 6, seed: int = 0) -> torch.Tensor:
    """``n`` seeded random palettes ``(n, k, 3)`` RGB: colours uniform in L, C (see RANDOM_L/C) and hue.

    Each colour is drawn in LCh, (L, C cos h, C sin h) in LAB, and redrawn until it lies in the sRGB
    gamut, so the palette shows exactly the drawn colours. Deterministic for a seed.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n * k:
        u = torch.rand(256, 3, generator=g, dtype=torch.float64)
        L = RANDOM_L[0] + (RANDOM_L[1] - RANDOM_L[0]) * u[:, 0]
        C = RANDOM_C[0] + (RANDOM_C[1] - RANDOM_C[0]) * u[:, 1]
        h = 2 * math.pi * u[:, 2]
        lab = torch.stack([L, C * torch.cos(h), C * torch.sin(h)], -1)
        rgb = lab_to_rgb(lab, dim=-1, clip=False)
        ok = ((rgb >= 0) & (rgb <= 1)).all(-1)
        out.extend(rgb[ok].clamp(0, 1))
    return torch.stack(out[:n * k]).reshape(n, k, 3).float()


def palette_swatch(palette, height: int = 40, width: int = 40) -> np.ndarray:
    """A ``(height, 6*width, 3)`` float image of the palette's colours side by side, for ``imshow``."""
    p = parse_palette(palette) if not torch.is_tensor(palette) else palette.detach().cpu().float()
    if p.ndim != 2 or p.shape[-1] != 3:
        raise ValueError(f"palette_swatch wants one (6, 3) palette, got shape {tuple(p.shape)}")
    row = np.repeat(p.clamp(0, 1).numpy()[None], width, axis=0).transpose(1, 0, 2).reshape(-1, 3)
    return np.repeat(row[None], height, axis=0)


# --------------------------------------------------------------------------------------------------
# The palette cache
# --------------------------------------------------------------------------------------------------

DEFAULT_CACHE_DIR = CACHE_DIR
# extract_palette's parameters, part of the cache key: a change here recomputes every palette.
_EXTRACT_PARAMS = {"k": 6, "seed": 0, "max_pixels": 20000, "iters": 30}
_CACHE_VERSION = 1


def _palette_key(rgb: torch.Tensor) -> str:
    h = hashlib.sha256()
    meta = {"v": _CACHE_VERSION, "shape": list(rgb.shape), "dtype": str(rgb.dtype), **_EXTRACT_PARAMS}
    h.update(json.dumps(meta, sort_keys=True).encode())
    h.update(rgb.contiguous().numpy().tobytes())
    return h.hexdigest()


def cached_palette(rgb: torch.Tensor, cache_dir=None, name: str = "") -> torch.Tensor:
    """:func:`pnlib.palette.extract_palette` of a ``(3, H, W)`` image, cached on disk.

    The cache is one small JSON per image in ``cache_dir`` (default ``<repo>/runs/cache/palettes``),
    named by the SHA-256 of the extraction parameters, the image's shape and its float32 pixel bytes.
    So a second run reads the palette back, and a changed image (or changed parameters) recomputes.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    key = _palette_key(rgb)
    f = cache_dir / f"{key}.json"
    try:
        return parse_palette(np.array(json.loads(f.read_text())["palette"], dtype=np.float32))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable entry: compute it
    pal = extract_palette(rgb, **_EXTRACT_PARAMS)
    entry = {"name": name, "shape": list(rgb.shape), "params": _EXTRACT_PARAMS,
             "hex": format_palette(pal), "palette": pal.tolist()}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(entry, fh)
        os.replace(tmp, f)  # atomic: a concurrent reader sees the old file or the new one
    except OSError as e:
        warnings.warn(f"could not write the palette cache {f}: {e}", stacklevel=2)
    return pal
