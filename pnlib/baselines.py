"""Baselines for PaletteNet's evaluation: identity, the hue-shift oracle, Chang et al. 2015, Tan et al. 2018.

PaletteNet §4.5 compares with "the previous color transfer function method [3]": H. Chang, O. Fried,
Y. Liu, S. DiVerdi, A. Finkelstein, "Palette-based Photo Recoloring", ACM TOG 34(4) (SIGGRAPH 2015).
That method needs the *source* palette P_s as well as the target P_t (PaletteNet needs only P_t), and
it recolours with one global colour transfer function, blind to where a pixel is (§4.5). Here:

- :func:`identity`: the source unchanged, the "do nothing" bound of an evaluation protocol.
- :func:`oracle`: the exact hue shift of eq. (10), the ground truth of protocol A (its floor, ΔE00 0).
- :func:`chang_palette`, :func:`chang_recolor`: Chang et al.'s palette extraction and colour transfer,
  written from the paper's description (compact, CPU, no GUI). ``python -m pnlib bench chang`` times it.
- :func:`tan_palette`, :func:`tan_layers`, :func:`tan_recolor`: J. Tan, J. Echevarria, Y. Gingold,
  "Efficient palette-based decomposition and recoloring of images via RGBXY-space geometry", ACM TOG
  37(6) (SIGGRAPH Asia 2018), written from the paper: a later method than PaletteNet (not in its §4.5),
  the palette recolouring compared against today. Its palette is the simplified convex hull of the
  pixels; each pixel is a convex mix of it, with weights smooth in space (RGBXY geometry).
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F

from .color import hue_shift, lab_to_rgb, rgb_to_lab
from .palette import parse_palette

__all__ = ["identity", "oracle", "chang_palette", "chang_target_luminance", "chang_luminance_curve",
           "chang_transfer_lab", "chang_recolor", "tan_palette", "tan_layers", "tan_recolor", "TanLayers"]

#: Chang et al.'s palette seeding: a chosen colour attenuates the weight of bins near it, σ_a = 80 (LAB).
CHANG_SIGMA_A = 80.0
_RAY = 300.0       # an ab step this long leaves the sRGB gamut from anywhere inside it
_BISECT = 22       # bisection steps for a gamut-boundary point (300 / 2**22 < 1e-4 ab units)


# ---------------------------------------------------------------------------------------------- simple
def identity(rgb: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """The source image I_s unchanged (any further arguments, e.g. a target palette, are ignored)."""
    return rgb


def oracle(rgb: torch.Tensor, degrees, dim: int = -3) -> torch.Tensor:
    """The ground truth of protocol A: the exact hue shift of eq. (10), :func:`pnlib.color.hue_shift`.

    Returns LAB (raw units), like ``hue_shift``; its ΔE00 to the ground truth is 0 by definition.
    """
    return hue_shift(rgb, degrees, dim=dim)


# --------------------------------------------------------------------------------------------- helpers
def _palette(p, name: str) -> torch.Tensor:
    """Any palette form -> ``(k, 3)`` float64 RGB tensor."""
    t = p.detach().cpu().double() if torch.is_tensor(p) else parse_palette(p).double()
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{name} must be a (k, 3) RGB palette, got shape {tuple(t.shape)}")
    return t.clamp(0.0, 1.0)


def _in_gamut(L: torch.Tensor, ab: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Whether LAB colours ``(L, a, b)`` (``L``: (...), ``ab``: (..., 2)) lie in the sRGB gamut."""
    lab = torch.cat([L.unsqueeze(-1), ab], -1)
    rgb = lab_to_rgb(lab, dim=-1, clip=False)
    z_ok = (L + 16.0) / 116.0 - ab[..., 1] / 200.0 >= 0.0   # lab_to_rgb clamps a negative z: not in gamut
    return ((rgb >= -tol) & (rgb <= 1.0 + tol)).all(-1) & z_ok


def _boundary(L: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The last in-gamut point on the ab segment start -> end at luminance ``L``, by bisection.

    Assumes ``start`` in and ``end`` out of the gamut (the gamut slice at one L is close to convex, so
    the segment crosses the boundary once). Vectorised: ``L`` (...), ``start``/``end`` (..., 2).
    """
    lo = torch.zeros_like(L)
    hi = torch.ones_like(L)
    step = end - start
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        ok = _in_gamut(L, start + mid.unsqueeze(-1) * step)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return start + lo.unsqueeze(-1) * step


# ------------------------------------------------------------------------------------ palette (Chang §3)
def chang_palette(rgb: torch.Tensor, k: int = 6, sigma: float = CHANG_SIGMA_A, iters: int = 10,
                  exclude_black: bool = False) -> torch.Tensor:
    """Chang et al.'s palette of an image: weighted k-means over a colour histogram -> ``(k, 3)`` RGB.

    The RGB cube is cut into 16×16×16 bins; each non-empty bin is one sample, its mean LAB colour with
    its pixel count as weight. Seeding is deterministic: take the heaviest bin's colour, multiply every
    bin's weight by ``1 - exp(-d²/σ_a²)`` (d: LAB distance to the chosen colour, σ_a = 80), repeat k
    times. Then ``iters`` Lloyd iterations of weighted k-means. With ``exclude_black`` black is an extra
    fixed centre (seeded first, dropped at the end), as Chang does so that shadows claim no palette entry.
    The palette is sorted by luminance, darkest first (Chang's order). ``rgb``: ``(3, H, W)`` in [0, 1].
    """
    if not torch.is_tensor(rgb) or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"chang_palette wants a (3, H, W) RGB tensor, got {getattr(rgb, 'shape', type(rgb))}")
    px = rgb.detach().cpu().double().clamp(0.0, 1.0).reshape(3, -1)
    idx = (px * 16).floor().clamp(0, 15).long()
    flat = idx[0] * 256 + idx[1] * 16 + idx[2]
    lab = rgb_to_lab(px, dim=0).T                                          # (P, 3)
    counts = torch.bincount(flat, minlength=4096).double()
    sums = torch.zeros(4096, 3, dtype=torch.float64).index_add_(0, flat, lab)
    keep = counts > 0
    means, weights = sums[keep] / counts[keep, None], counts[keep]

    fixed = [torch.zeros(3, dtype=torch.float64)] if exclude_black else []
    w = weights.clone()
    for c in fixed:
        w = w * (1.0 - torch.exp(-((means - c) ** 2).sum(1) / sigma ** 2))
    seeds = []
    for _ in range(k):
        c = means[int(torch.argmax(w))]
        seeds.append(c)
        w = w * (1.0 - torch.exp(-((means - c) ** 2).sum(1) / sigma ** 2))
    centres = torch.stack(fixed + seeds)
    n_fixed = len(fixed)
    for _ in range(iters):
        assign = torch.cdist(means, centres).argmin(1)
        new = centres.clone()
        for j in range(n_fixed, len(centres)):
            m = assign == j
            if m.any():
                new[j] = (means[m] * weights[m, None]).sum(0) / weights[m].sum()
        if torch.allclose(new, centres, atol=1e-6):
            break
        centres = new
    palette = centres[n_fixed:]
    palette = palette[torch.argsort(palette[:, 0], stable=True)]
    return lab_to_rgb(palette, dim=-1, clip=True).float()


# ---------------------------------------------------------------------------- colour transfer (Chang §4)
def chang_target_luminance(src_L: torch.Tensor, tgt_L: torch.Tensor) -> torch.Tensor:
    """Make the target luminances keep the source palette's luminance order (Chang's monotonicity).

    ``src_L``, ``tgt_L``: ``(k,)``, entry i of the target is the new colour of source colour i. In the
    order of increasing ``src_L`` the target values are made non-decreasing from the top down:
    L'_i = min(L'_i, L'_{i+1}), so the lightest target is kept and a too-light darker one is pulled down.
    Returns the adjusted ``(k,)`` target L (clamped to [0, 100]) in the caller's order.
    """
    order = torch.argsort(src_L, stable=True)
    t = tgt_L[order].clamp(0.0, 100.0)
    t = torch.flip(torch.cummin(torch.flip(t, [0]), 0).values, [0])
    out = torch.empty_like(t)
    out[order] = t
    return out


def chang_luminance_curve(L: torch.Tensor, src_L: torch.Tensor, tgt_L: torch.Tensor) -> torch.Tensor:
    """Chang's luminance transfer f_L: a monotonic piecewise-linear map of L (any shape, 0-100).

    The curve runs through (0, 0), (L_i, L'_i) for the source palette sorted by L, and (100, 100), with
    L'_i from :func:`chang_target_luminance`; so it is non-decreasing, whatever the target palette.
    """
    order = torch.argsort(src_L, stable=True)
    xs = src_L[order].to(L.dtype).clamp(0.0, 100.0)
    ys = chang_target_luminance(src_L, tgt_L)[order].to(L.dtype)
    zero, hundred = xs.new_zeros(1), xs.new_full((1,), 100.0)
    xs, ys = torch.cat([zero, xs, hundred]), torch.cat([zero, ys, hundred])
    Lc = L.clamp(0.0, 100.0)
    i = torch.searchsorted(xs, Lc.reshape(-1).contiguous(), right=True).clamp(1, len(xs) - 1).reshape(L.shape)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    t = ((Lc - x0) / (x1 - x0).clamp_min(1e-9)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


def _rbf_weights(lab: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Chang's blending weights of the k palette colours at LAB points ``lab`` (M, 3) -> (M, k).

    Gaussian radial basis functions φ(r) = exp(-r² / 2σ_r²) centred on the source palette colours C_j,
    σ_r = the mean distance between two palette colours; the coefficients solve w_i(C_j) = δ_ij. Then
    negative weights are clamped to 0 and the rest renormalised to sum 1.
    """
    k = src.shape[0]
    d = torch.cdist(src, src)
    sigma = d.sum() / max(k * (k - 1), 1)
    sigma = sigma if sigma > 1e-6 else torch.ones_like(sigma)
    phi = lambda r: torch.exp(-r ** 2 / (2 * sigma ** 2))  # noqa: E731
    A = phi(d)                                             # A[j, i] = φ(|C_j - C_i|), symmetric
    # w(x) = φ(x) @ A⁻¹, so w(C_j) = e_j; the pseudo-inverse copes with a repeated palette colour.
    lam = torch.linalg.pinv(A, hermitian=True, rtol=1e-10)
    p = phi(torch.cdist(lab, src))
    w = (p @ lam).clamp_min(0.0)
    s = w.sum(1, keepdim=True)
    fallback = p / p.sum(1, keepdim=True).clamp_min(1e-300)
    return torch.where(s > 1e-12, w / s.clamp_min(1e-12), fallback)


def chang_transfer_lab(lab: torch.Tensor, src_lab: torch.Tensor, tgt_lab: torch.Tensor) -> torch.Tensor:
    """Chang's colour transfer function f evaluated directly at LAB points ``lab`` (M, 3) -> (M, 3).

    ``src_lab``/``tgt_lab``: ``(k, 3)`` LAB palettes, C_i -> C'_i. L' = f_L(L) (the luminance curve).
    For each pair i the ab step Δ_i = C'_i - C_i (ab only) is applied to x with the gamut in mind, each
    colour in the ab plane of its own (source) L, where it is sure to be in gamut: C_b is where the ray
    from C_i along Δ_i leaves the gamut; if x + Δ_i is in gamut, x_b is where the ray from x along Δ_i
    leaves it, else x_b is the gamut boundary on the segment C'_i -> x + Δ_i; then
    f_i(x) = x + (x_b - x)·min(1, |Δ_i| / |C_b - C_i|), so f_i(C_i) = C'_i exactly and colours near the
    boundary move proportionally less. ab' = Σ_i w_i(x) f_i(x) (:func:`_rbf_weights`); the final
    (L', ab') may still leave the gamut when L changed a lot, and is clipped when shown.
    """
    lab = lab.double()
    src, tgt = src_lab.double(), tgt_lab.double()
    k = src.shape[0]
    L_out = chang_luminance_curve(lab[:, 0], src[:, 0], tgt[:, 0])              # (M,)
    delta = tgt[:, 1:] - src[:, 1:]                                             # (k, 2)
    norm = delta.norm(dim=1)                                                    # (k,)
    moving = norm > 1e-6
    unit = delta / norm.clamp_min(1e-12)[:, None]
    # C_b for each palette colour, and the step ratio.
    c_b = _boundary(src[:, 0], src[:, 1:], src[:, 1:] + _RAY * unit)
    ratio = (norm / (c_b - src[:, 1:]).norm(dim=1).clamp_min(1e-9)).clamp(max=1.0)   # (k,)

    M = lab.shape[0]
    L = lab[:, None, 0].expand(M, k)                                           # (M, k)
    x = lab[:, None, 1:].expand(M, k, 2)                                        # (M, k, 2)
    moved = x + delta[None]
    inside = _in_gamut(L, moved)
    ray_end = x + _RAY * unit[None]
    seg_start = tgt[None, :, 1:].expand(M, k, 2)
    start = torch.where(inside[..., None], x, seg_start)
    end = torch.where(inside[..., None], ray_end, moved)
    x_b = _boundary(L, start, end)
    f = x + (x_b - x) * ratio[None, :, None]
    f = torch.where(moving[None, :, None], f, x)                                # unchanged colour: identity

    w = _rbf_weights(lab, src)                                                  # (M, k)
    ab = (w[..., None] * f).sum(1)
    return torch.cat([L_out[:, None], ab], 1)


def _recolor_one(rgb: torch.Tensor, src_lab: torch.Tensor, tgt_lab: torch.Tensor, grid: int | None) -> torch.Tensor:
    lab = rgb_to_lab(rgb, dim=0)                                                # (3, H, W)
    H, W = rgb.shape[-2:]
    if not grid:                                                                # direct, every pixel
        out = chang_transfer_lab(lab.reshape(3, -1).T, src_lab, tgt_lab).T.reshape(3, H, W).to(rgb.dtype)
        return lab_to_rgb(out, dim=0, clip=True)
    # Grid lookup (Chang's speed-up): evaluate f at the vertices of a grid over the RGB cube, store the
    # ab displacement f(v)_ab - v_ab, and interpolate it trilinearly at each pixel's RGB.
    v = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    verts = torch.stack(torch.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)    # [r, g, b]
    vlab = rgb_to_lab(verts, dim=-1)
    disp = (chang_transfer_lab(vlab, src_lab, tgt_lab)[:, 1:] - vlab[:, 1:]).to(rgb.dtype)
    volume = disp.T.reshape(1, 2, grid, grid, grid)                             # (1, C, D=r, H=g, W=b)
    coords = rgb.reshape(3, -1).clamp(0.0, 1.0) * 2.0 - 1.0                     # grid_sample wants (x, y, z)
    coords = torch.stack([coords[2], coords[1], coords[0]], -1).reshape(1, 1, 1, -1, 3)
    d_ab = F.grid_sample(volume, coords, mode="bilinear", padding_mode="border", align_corners=True)
    d_ab = d_ab.reshape(2, H, W)
    L_new = chang_luminance_curve(lab[0], src_lab[:, 0].to(rgb.dtype), tgt_lab[:, 0].to(rgb.dtype))
    out = torch.cat([L_new[None], lab[1:] + d_ab], 0)
    return lab_to_rgb(out, dim=0, clip=True)


def chang_recolor(rgb: torch.Tensor, source_palette, target_palette, grid: int | None = 16) -> torch.Tensor:
    """Recolour ``rgb`` by Chang et al. 2015's palette-based colour transfer (PaletteNet §4.5, ref. [3]).

    The user maps each source palette colour C_i (P_s) to a target colour C'_i (P_t); one global colour
    transfer function f: LAB -> LAB follows from those k pairs, and every pixel is mapped by it:
    1. luminance: the target L'_i are made monotonic in the order of the source L_i (L'_i = min(L'_i,
       L'_{i+1})); a piecewise-linear curve through (0,0), (L_i, L'_i), (100,100) maps every pixel's L.
    2. chroma, per pair: translate x by Δ_i = C'_i - C_i in ab, scaled so that x stays in the sRGB
       gamut (of its own L plane): the step is the fraction |Δ_i|/|C_b - C_i| of x's way to the gamut
       boundary (C_b: where C_i's own ray leaves it), so C_i lands exactly on C'_i (:func:`chang_transfer_lab`).
    3. blend the k translated chromas with Gaussian radial-basis weights in LAB centred on the C_i
       (σ = mean palette-colour distance, w_i(C_j) = δ_ij, negatives clamped to 0, renormalised).
    4. speed: f is evaluated only on a ``grid``³ lattice over the RGB cube and each pixel's ab shift is
       trilinearly interpolated (``grid=None`` or 0 evaluates every pixel directly: exact but slow); the
       pixel's new L comes from the curve exactly. The result is clipped to the displayable [0, 1].
    Unlike PaletteNet it needs P_s and ignores image context: every pixel of one colour moves alike.

    ``rgb``: ``(3, H, W)`` or ``(N, 3, H, W)`` float in [0, 1]. Palettes: ``(k, 3)`` RGB in [0, 1] (or any
    form :func:`pnlib.palette.parse_palette` reads), colour i of the target replacing colour i of the
    source; for a batch also ``(N, k, 3)``. Returns RGB in [0, 1] of the input's shape and dtype.
    """
    if not torch.is_tensor(rgb) or not rgb.is_floating_point() or rgb.ndim not in (3, 4) or rgb.shape[-3] != 3:
        raise ValueError(f"chang_recolor wants a float (3, H, W) or (N, 3, H, W) RGB tensor, "
                         f"got {getattr(rgb, 'shape', type(rgb))}")
    if rgb.ndim == 4:
        n = rgb.shape[0]
        pick = lambda p, i: p[i] if torch.is_tensor(p) and p.ndim == 3 else p  # noqa: E731
        return torch.stack([chang_recolor(rgb[i], pick(source_palette, i), pick(target_palette, i), grid)
                            for i in range(n)])
    src, tgt = _palette(source_palette, "source_palette"), _palette(target_palette, "target_palette")
    if src.shape != tgt.shape:
        raise ValueError(f"source and target palettes differ in size: {tuple(src.shape)} vs {tuple(tgt.shape)}")
    device = rgb.device
    out = _recolor_one(rgb.detach().cpu(), rgb_to_lab(src, dim=-1), rgb_to_lab(tgt, dim=-1), grid)
    return out.to(device)


# -------------------------------------------------------------------------- Tan et al. 2018 (RGBXY layers)
#: Tan et al.'s spatial coordinates: x and y scaled to [0, 1] (the long side), beside RGB in [0, 1].
TAN_XY_SCALE = 1.0


def _triples(m: int) -> np.ndarray:
    """Every triple of ``m`` indices, (C(m, 3), 3), cached."""
    if m not in _TRIPLES:
        _TRIPLES[m] = np.array(list(itertools.combinations(range(m), 3)), dtype=np.int64).reshape(-1, 3)
    return _TRIPLES[m]


_TRIPLES: dict = {}


def _collapse_lp(planes: np.ndarray, area: np.ndarray):
    """Tan et al. 2016's edge collapse: the new vertex v minimising the volume it adds to the hull.

    ``planes`` (m, 4): the unit outward planes n·x + d = 0 of the faces around the edge, ``area`` (m,)
    their areas. v must lie on or outside every plane (the hull only grows, so it still encloses every
    pixel); the added volume is Σ_f area_f (n_f·v + d_f) / 3, linear in v. A linear programme in three
    unknowns: its optimum is a vertex of the feasible region, the meeting point of three planes, so every
    triple is solved and the feasible one of least volume kept (exact, and vectorised; the sum of the
    planes' normals, weighted by area, points into the cone of the normals, so the optimum is bounded).
    Returns (added volume, v), or (inf, None) when no three planes meet (never on a closed hull).
    """
    t = _triples(len(planes))
    A, b = planes[t, :3], -planes[t, 3]
    ok = np.abs(np.linalg.det(A)) > 1e-12
    if not ok.any():
        return np.inf, None
    v = np.linalg.solve(A[ok], b[ok][..., None])[..., 0]                      # (T, 3)
    v = v[(v @ planes[:, :3].T + planes[:, 3] >= -1e-9).all(1)]
    if not len(v):
        return np.inf, None
    added = (v @ planes[:, :3].T + planes[:, 3]) @ area / 3.0
    i = int(np.argmin(added))
    return float(added[i]), v[i]


def _hull(points: np.ndarray):
    from scipy.spatial import ConvexHull
    try:
        return ConvexHull(points)
    except Exception:  # flat or too few colours (a two-colour image): joggle the input (qhull's QJ)
        return ConvexHull(points, qhull_options="QJ")


def tan_palette(rgb, k: int = 6, clip: bool = True) -> torch.Tensor:
    """Tan et al.'s palette: the convex hull of the pixels in RGB, simplified to ``k`` vertices -> (k, 3).

    Tan, Echevarria, Gingold 2018, after Tan, Lien, Gingold 2016 (TOG 36(1)): every pixel is a convex mix of the
    palette colours exactly when the palette's convex hull encloses the pixels' colours. Start from the
    hull of the pixels and collapse one edge at a time, each time the edge whose collapse adds the least
    volume (:func:`_collapse_lp`), until ``k`` vertices remain; the hull only grows, so it keeps
    enclosing every pixel (Sander et al.'s progressive hulls). The vertices may then lie outside the RGB
    cube: they are clipped to it, as the authors' code does, so a few pixels can fall outside the
    palette's hull and come back slightly changed (the evaluation's "own palette" column measures it;
    keeping the vertices inside the cube during the collapses was tried and was worse on 3 of 8 bundled
    photos). Sorted by luminance, darkest first. ``rgb``: ``(3, H, W)`` in [0, 1] or ``(N, 3)`` colours;
    ``clip=False`` returns the vertices before the clip (for tests and figures).
    """
    pts = _pixels(rgb)
    hull = _hull(pts)
    V = pts[hull.vertices]
    ids = list(range(len(V)))            # a stable name per vertex, so unchanged edges keep their cost
    next_id, cache = len(V), {}
    while len(V) > k:
        hull = _hull(V)
        if len(hull.vertices) < len(V):            # the collapse swallowed vertices: drop them
            V, ids = V[hull.vertices], [ids[i] for i in hull.vertices]
            if len(V) <= k:
                break
            hull = _hull(V)
        S, planes = hull.simplices, hull.equations
        P = V[S]
        area = 0.5 * np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=1)
        faces_of = [[] for _ in range(len(V))]
        for f, s in enumerate(S):
            for i in s:
                faces_of[i].append(f)
        face_key = [tuple(sorted(ids[i] for i in s)) for s in S]
        edges = {(min(a, b), max(a, b)) for s in S for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2]))}
        best = (np.inf, None, None)
        for u, w in edges:
            F = sorted(set(faces_of[u]) | set(faces_of[w]))
            key = (ids[u], ids[w], frozenset(face_key[f] for f in F))
            if key not in cache:
                cache[key] = _collapse_lp(planes[F], area[F])
            c, v = cache[key]
            if c < best[0]:
                best = (c, (u, w), v)
        if best[1] is None:          # no collapse possible (degenerate hull): keep what there is
            break
        _, (u, w), v = best
        rest = np.ones(len(V), dtype=bool)
        rest[[u, w]] = False
        V = np.vstack([V[rest], v])
        ids = [i for i, r in zip(ids, rest, strict=True) if r] + [next_id]
        next_id += 1
    V = np.clip(V, 0.0, 1.0) if clip else V
    pal = torch.from_numpy(V).double()
    pal = pal[torch.argsort(rgb_to_lab(pal.clamp(0, 1), dim=-1)[:, 0], stable=True)]
    return pal.float() if clip else pal


def _pixels(rgb) -> np.ndarray:
    if torch.is_tensor(rgb) and rgb.ndim == 3 and rgb.shape[0] == 3:
        return rgb.detach().cpu().double().clamp(0, 1).reshape(3, -1).T.numpy()
    a = np.asarray(rgb.detach().cpu() if torch.is_tensor(rgb) else rgb, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"Tan et al.'s palette wants a (3, H, W) RGB image or (N, 3) colours, got shape {a.shape}")
    return np.clip(a, 0.0, 1.0)


def _barycentric(tri, x: np.ndarray):
    """Barycentric coordinates of points ``x`` in a scipy Delaunay tessellation: (simplex index (-1:
    outside), (N, d + 1) coordinates)."""
    s = tri.find_simplex(x)
    T = tri.transform[np.maximum(s, 0)]
    d = x.shape[1]
    b = np.einsum("nij,nj->ni", T[:, :d], x - T[:, d])
    return s, np.hstack([b, 1.0 - b.sum(1, keepdims=True)])


def _mix_weights(palette: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weights ``(N, k)`` ≥ 0, summing to 1, that mix ``palette`` (k, 3) into each colour of ``x`` (N, 3).

    Inside the palette's hull: barycentric coordinates in its Delaunay tetrahedra (our choice of
    tessellation; any one reproduces the colour). Outside (only when vertices were clipped to the cube)
    or with a flat palette: non-negative least squares with the sum-to-one row weighted ×100, i.e. the
    nearest mix.
    """
    from scipy.optimize import nnls
    from scipy.spatial import Delaunay
    k = len(palette)
    W = np.zeros((len(x), k))
    out = np.ones(len(x), dtype=bool)
    try:
        tri = Delaunay(palette)
        s, b = _barycentric(tri, x)
        inside = (s >= 0) & (b >= -1e-9).all(1)
        W[np.nonzero(inside)[0][:, None], tri.simplices[s[inside]]] = np.clip(b[inside], 0, None)
        out = ~inside
    except Exception:  # noqa: BLE001 - a flat palette has no tetrahedra: every colour takes the fallback
        pass
    A = np.vstack([palette.T, 100.0 * np.ones((1, k))])
    for i in np.nonzero(out)[0]:
        W[i] = nnls(A, np.append(x[i], 100.0))[0]
    return W / W.sum(1, keepdims=True)


class TanLayers:
    """Tan et al. 2018's decomposition of one photo: its palette (k, 3) and per-pixel weights (k, H, W).

    Built by :func:`tan_layers`; :meth:`recolor` mixes new palette colours with the same weights. The
    attributes ``seconds`` (time to build) and ``n_rgbxy`` (vertices of the 5-D hull) are reported by
    the evaluation.
    """

    def __init__(self, palette: torch.Tensor, weights: torch.Tensor, seconds: float, n_rgbxy: int):
        self.palette, self.weights, self.seconds, self.n_rgbxy = palette, weights, seconds, n_rgbxy

    def recolor(self, target_palette) -> torch.Tensor:
        """The photo with palette colour i replaced by colour i of ``target_palette`` -> (3, H, W) RGB.

        Each pixel is Σ_i w_i(x) P_t,i: a weighted sum, milliseconds at any size (Tan et al. §4).
        """
        tgt = _palette(target_palette, "target_palette").float()
        if tgt.shape != self.palette.shape:
            raise ValueError(f"target palette has {tgt.shape[0]} colours, Tan et al.'s palette "
                             f"{self.palette.shape[0]}")
        return torch.einsum("khw,kc->chw", self.weights, tgt).clamp(0.0, 1.0)


def tan_layers(rgb: torch.Tensor, k: int = 6, palette=None) -> TanLayers:
    """Tan, Echevarria, Gingold 2018, "Efficient palette-based decomposition and recoloring of images via
    RGBXY-space geometry" (SIGGRAPH Asia): per-pixel mixing weights of the palette, written from the paper.

    1. the palette: the simplified convex hull in RGB (:func:`tan_palette`), unless ``palette`` is given
       (a (k, 3) tensor, used as is: ``tan_palette(..., clip=False)`` gives exact weights);
    2. each pixel as a point (R, G, B, x, y) in 5-D (x, y scaled to [0, 1] along the long side, times
       :data:`TAN_XY_SCALE`); the convex hull of those points has few vertices (hundreds to thousands),
       and the Delaunay tessellation of those vertices gives each pixel barycentric weights over six of
       them (W_RGBXY). Nearby pixels of one colour share vertices: the weights are smooth in space;
    3. each 5-D vertex's colour as a mix of the palette (W_RGB, :func:`_mix_weights`);
    4. a pixel's palette weights are W_RGBXY · W_RGB: non-negative, summing to 1, and mixing the palette
       back into the pixel's colour exactly when the palette's hull encloses it.
    A pixel that the 5-D tessellation misses by rounding takes its colour's W_RGB directly.
    ``rgb``: (3, H, W) in [0, 1]. Returns :class:`TanLayers`.
    """
    from scipy.spatial import Delaunay
    t0 = time.perf_counter()
    if not torch.is_tensor(rgb) or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"tan_layers wants a (3, H, W) RGB tensor, got {getattr(rgb, 'shape', type(rgb))}")
    H, W = rgb.shape[-2:]
    px = _pixels(rgb)
    pal = tan_palette(px, k) if palette is None else torch.as_tensor(palette).detach().cpu().double()
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f"palette must be a (k, 3) RGB palette, got shape {tuple(pal.shape)}")
    P = pal.double().numpy()
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    xy = np.stack([xx.ravel(), yy.ravel()], 1) / max(H - 1, W - 1, 1) * TAN_XY_SCALE
    X = np.hstack([px, xy])
    hull = _hull(X)
    verts = X[hull.vertices]
    w_rgb = _mix_weights(P, verts[:, :3])                                     # (M, k)
    try:
        tri = Delaunay(verts)
        s, b = _barycentric(tri, X)
        ok = (s >= 0) & (b >= -1e-7).all(1)
        Wpx = np.einsum("nj,njk->nk", np.clip(b, 0, None), w_rgb[tri.simplices[np.maximum(s, 0)]])
    except Exception:  # noqa: BLE001 - a degenerate 5-D hull: every pixel by its colour alone
        ok = np.zeros(len(X), dtype=bool)
        Wpx = np.zeros((len(X), len(P)))
    if (~ok).any():
        Wpx[~ok] = _mix_weights(P, px[~ok])
    Wpx /= Wpx.sum(1, keepdims=True)
    weights = torch.from_numpy(Wpx.T.reshape(len(P), H, W)).float()
    return TanLayers(pal.float(), weights, time.perf_counter() - t0, len(verts))


def tan_recolor(rgb: torch.Tensor, target_palette, layers: TanLayers | None = None) -> torch.Tensor:
    """Recolour ``rgb`` (3, H, W) by Tan et al. 2018: its palette's colour i becomes ``target_palette``'s
    colour i (:func:`tan_layers`; pass ``layers`` to reuse a decomposition). Returns (3, H, W) RGB."""
    layers = layers if layers is not None else tan_layers(rgb, k=len(_palette(target_palette, "target_palette")))
    return layers.recolor(target_palette).to(rgb.device)
