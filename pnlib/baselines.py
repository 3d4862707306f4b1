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
  a palette recolouring newer work compares against. Its palette is the simplified convex hull of the
  pixels; each pixel is a convex mix of it, with weights smooth in space (RGBXY geometry).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .color import hue_shift, lab_to_rgb, rgb_to_lab
from .rgbxy import TanLayers, _palette, tan_layers, tan_palette, tan_recolor  # noqa: F401 - Tan et al.: pnlib.rgbxy

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
