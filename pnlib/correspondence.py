"""Palette correspondence (ours, not the paper's): how the palette head of RD turns P_s into P_t.

PaletteNet's RD (§2) paints Îab_t from features. Our palette head instead reads the photo's own palette
P_s next to the target P_t and moves each region of the photo from its colour in P_s to the matching
colour of P_t: per pixel, soft weights over the six colours blend six similarity transforms of the ab
plane (:class:`PaletteTransfer`). Notebook 07 derives it and measures it; benchmarks/RESULTS.md has the
numbers behind each setting.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .color import LAB_RANGES, denormalize_lab


class PaletteTransfer(nn.Module):
    """Palette correspondence (ours): soft weights over P_s's entries and one ab transform per entry.

    In raw LAB, with z = a + ib a pixel's chroma as a complex number and p_s,k, p_t,k entry k's chroma:

        T_k(z) = ρ_k (z - p_s,k) + p_t,k,   ρ_k = 1 + (p_t,k - p_s,k) conj(p_s,k) / (|p_s,k|² + ε²)

    T_k sends p_s,k to p_t,k exactly. For a saturated entry ρ_k ≈ p_t,k / p_s,k: the rotation by the
    hue change and the scaling by the chroma change, so a hue shift (eq. 10) turns every pixel near the
    entry with it, not only the entry itself; for a grey entry (|p_s,k| << ε) ρ_k ≈ 1, a translation.
    |ρ_k| is capped at ``rho_max`` (a grey entry sent to a saturated one must not blow up the chroma
    around it). With P_t = P_s every ρ_k = 1 and T_k is the identity.

    The weights are w(x) = softmax_k(logits), the logits a prior, -|I_s(x) - P_s,k|² / (2 (τσ)²) in LAB
    (σ: the mean distance between P_s's entries, as in Chang et al.'s radial basis weights; τ = 0.25),
    plus RD's corrections from context. Σ_k w_k T_k(z) is one affine map of z per pixel, returned as
    (A, β) in normalised units (see :func:`apply_affine`), so it upsamples like the affine head's.
    """

    def __init__(self, eps: float = 2.0, rho_max: float = 2.0, tau: float = 0.25, radius: float = 1 / 144,
                 guide_eps: float = 1e-2):
        super().__init__()
        self.eps, self.rho_max, self.radius, self.guide_eps = eps, rho_max, radius, guide_eps
        # τ is a setting, not learned: trained on hue shifts alone it drifts to smoother weights (0.25 ->
        # 0.30 in 3,600 quick steps), which blurs designer palettes (benchmarks/RESULTS.md). A buffer
        # under the same name, so checkpoints that learned it still load (with their own value).
        self.register_buffer("log_tau", torch.tensor(float(tau)).log())

    def forward(self, corrections, I_s, P_s, P_t, prior=None):
        """(A, β) at ``I_s``'s size (N, 6, H, W): w = smooth(softmax(prior + corrections)), Σ_k w_k T_k.

        ``corrections``: RD's corrections to the prior's logits (N, 6, h, w). RD may have run on a
        smaller copy of the photo (:func:`pnlib.inference.recolor` runs it at half the working size, for
        speed): then they are upsampled (bilinear) to ``I_s``'s size, and the prior, the softmax and the
        smoothing are taken there, at the photo's own detail, with a window of at least two cells of RD's
        grid on each side, so that the coarse corrections draw no edges of their own. ``prior``: the
        prior's logits at ``I_s``'s size when the caller has them.
        """
        min_radius, corrections = 0, corrections.contiguous()  # a channels_last conv output: NCHW, as the prior
        if corrections.shape[-2:] != I_s.shape[-2:]:
            min_radius = round(2 * I_s.shape[-1] / corrections.shape[-1])
            corrections = F.interpolate(corrections, size=I_s.shape[-2:], mode="bilinear", align_corners=False)
        if prior is None:
            prior = self.prior_logits(I_s, P_s)
        w = self.smooth((prior + corrections).softmax(1), I_s, min_radius)
        return self.affine(w, P_s, P_t)

    def smooth(self, w, I_s, min_radius: int = 0):
        """The weights, edge-aware smoothed: a guided filter (He et al. 2010) guided by the source's colour.

        Per pixel, w is replaced by the best local linear function of the source's normalised LAB over
        a (2r+1)² window, averaged: in flat regions sensor noise no longer flips a pixel between two
        palette colours (speckle, bands), while a step of the source's colour (an object's edge, in L
        or in chroma alone) still steps the weights. Σ_k w_k = 1 is kept (the filter is linear and maps
        a constant to itself). r = the long side × ``radius`` (3 px at 288×432), so a photo is
        smoothed alike at any size (``min_radius``: at least this many pixels); ``radius`` 0 turns it
        off. The local linear coefficients are found
        on a half-size grid and upsampled (He and Sun's fast guided filter, 2015): a quarter of the work.

        In training (``self.training``) the guide is L alone: the colour guide made a quick training step
        1.6× as long (the README main command past 15 minutes), and trained on hue shifts the corrections
        barely depend on it; every checkpoint reported in benchmarks/RESULTS.md was trained so.
        """
        r = max(round(self.radius * max(w.shape[-2:])), min_radius)
        if r <= 0:
            return w
        guide = I_s[:, :1] if self.training else I_s   # training: L alone (see the docstring)
        return guided_filter(w, guide, r, self.guide_eps)

    def prior_logits(self, I_s, P_s):
        """-|I_s(x) - P_s,k|² / (2 (τσ)²) in raw LAB: (N, 6, H, W)."""
        lab, pal = denormalize_lab(I_s, 1), denormalize_lab(P_s, -1)          # (N, 3, H, W), (N, 6, 3)
        d2 = (lab.square().sum(1, keepdim=True) - 2 * torch.einsum("nchw,nkc->nkhw", lab, pal)
              + pal.square().sum(-1)[..., None, None]).clamp_min(0)            # (N, 6, H, W)
        sigma = torch.cdist(pal, pal).sum((1, 2)) / (pal.shape[1] * (pal.shape[1] - 1))
        scale = (self.log_tau.exp() * sigma.clamp_min(1.0)).square() * 2       # (N,)
        return -d2 / scale[:, None, None, None]

    def rho(self, P_s, P_t):
        """ρ_k as (re, im), each (N, 6), from raw chroma; |ρ_k| <= rho_max."""
        s, t = denormalize_lab(P_s, -1)[..., 1:], denormalize_lab(P_t, -1)[..., 1:]
        d = t - s
        den = s.square().sum(-1) + self.eps ** 2
        re = 1 + (d[..., 0] * s[..., 0] + d[..., 1] * s[..., 1]) / den
        im = (d[..., 1] * s[..., 0] - d[..., 0] * s[..., 1]) / den
        mag = torch.sqrt(re.square() + im.square()).clamp_min(1e-8)
        cap = mag.clamp(max=self.rho_max) / mag
        return re * cap, im * cap

    def affine(self, w, P_s, P_t):
        """Σ_k w_k T_k as (A11, A12, A21, A22, β1, β2) in normalised ab: (N, 6, H, W)."""
        re, im = self.rho(P_s, P_t)                                          # (N, 6) each
        s, t = denormalize_lab(P_s, -1)[..., 1:], denormalize_lab(P_t, -1)[..., 1:]                 # (N, 6, 2)
        # T_k(z) = ρ_k z + (p_t,k - ρ_k p_s,k): the offset c_k in raw ab
        c_a = t[..., 0] - (re * s[..., 0] - im * s[..., 1])
        c_b = t[..., 1] - (im * s[..., 0] + re * s[..., 1])
        per_entry = torch.stack([re, -im, im, re, c_a, c_b], -1)               # (N, 6 entries, 6)
        A11, A12, A21, A22, b1, b2 = torch.einsum("nkhw,nkj->njhw", w, per_entry).unbind(1)
        return _affine_to_normalised(A11, A12, A21, A22, b1, b2)


def guided_filter(w, guide, r: int, eps: float):
    """He et al.'s guided filter of ``w`` (N, K, H, W) by ``guide`` (N, C, H, W), C = 1 or 3, radius ``r`` >= 1.

    The local linear coefficients are found on a half-size grid for r >= 2 and upsampled (He and Sun's
    fast guided filter, 2015). Linear in ``w`` and maps a constant to itself, so Σ_k w_k = 1 is kept.
    Used by :meth:`PaletteTransfer.smooth` and by the per-region training tuples (:func:`pnlib.data.region_weights`).
    """
    C, K, (H, W) = guide.shape[1], w.shape[1], w.shape[-2:]
    guide = guide.contiguous()   # a channels_last guide (the network's input) beside NCHW maps is slower
    f = 2 if r >= 2 else 1   # the coefficients on a half-size grid (He & Sun's fast guided filter)
    I, v = (F.avg_pool2d(x, f) if f > 1 else x for x in (guide, w))
    r = max(1, r // f)
    mI, mw = box_mean(I, r), box_mean(v, r)                                    # (N, C|K, h, w)
    outer = (I[:, :, None] * I[:, None]).flatten(1, 2)                          # (N, C², h, w)
    cov = box_mean(outer, r).unflatten(1, (C, C)) - mI[:, :, None] * mI[:, None]  # (N, C, C, h, w)
    cov = cov + eps * torch.eye(C, dtype=w.dtype, device=w.device)[..., None, None]
    cross = box_mean((I[:, :, None] * v[:, None]).flatten(1, 2), r).unflatten(1, (C, K))
    cross = cross - mI[:, :, None] * mw[:, None]                                # (N, C, K, h, w)
    inv = _inverse3(cov) if C == 3 else 1.0 / cov
    a = (inv[:, :, :, None] * cross[:, None]).sum(2)                            # (N, C, K, h, w)
    b = mw - (a * mI[:, :, None]).sum(1)                                        # (N, K, h, w)
    # a and b averaged and upsampled together; then out = b + Σ_c a_c I_c at full size, in place
    # (elementwise products rather than a batched 3×3 matmul: 1.4× faster on 2 CPU threads)
    ab = F.interpolate(box_mean(torch.cat([a.flatten(1, 2), b], 1), r), size=(H, W), mode="bilinear",
                       align_corners=False)
    out = ab[:, C * K:].clone()
    for c in range(C):
        out.addcmul_(ab[:, c * K:(c + 1) * K], guide[:, c:c + 1])
    return out


def _inverse3(m):
    """The inverse of each symmetric 3×3 matrix of ``m`` (N, 3, 3, H, W), by its adjugate (elementwise)."""
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 1], m[:, 1, 2], m[:, 2, 2]
    A, B, C = d * f - e * e, c * e - b * f, b * e - c * d
    D, E, F_ = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * A + b * B + c * C
    inv = torch.stack([A, B, C, B, D, E, C, E, F_], 1) / det[:, None]
    return inv.unflatten(1, (3, 3))


def box_mean(x, r: int):
    """Mean of x (N, C, H, W) over the (2r+1)² window around each pixel, clipped at the borders.

    Separable: along W, then along H. For the small radii the filter uses (r <= :data:`SHIFTED_MAX_R`)
    a sum of 2r+1 shifted copies of the zero-padded map, divided by each position's count of pixels
    inside the image: 4-7× faster than summed-area tables at these radii (2026-11-30, 2 CPU threads),
    backward included. Larger r: summed-area tables (cumulative sums), whose cost does not grow with r.
    """
    along = _shifted_sum if r <= SHIFTED_MAX_R else _cumsum_sum
    def mean(x, dim):
        n = x.shape[dim]
        i = torch.arange(n, device=x.device)
        count = ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(x.dtype)
        return along(x, dim, r) / count.view((-1, 1) if dim == -2 else (-1,))
    return mean(mean(x, -1), -2)


#: box_mean's largest radius summed as shifted copies (beyond it, summed-area tables are cheaper).
SHIFTED_MAX_R = 8


def _shifted_sum(x, dim, r):
    n = x.shape[dim]
    p = F.pad(x, (r, r) if dim == -1 else (0, 0, r, r))
    s = p.narrow(dim, 0, n).clone()
    for k in range(1, 2 * r + 1):
        s += p.narrow(dim, k, n)
    return s


def _cumsum_sum(x, dim, r):
    n = x.shape[dim]
    c = F.pad(x.cumsum(dim), (1, 0) if dim == -1 else (0, 0, 1, 0))
    hi = torch.arange(n, device=x.device).add(r + 1).clamp(max=n)
    lo = torch.arange(n, device=x.device).sub(r).clamp(min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo)


#: normalised = scale · raw + offset for a and b (the ranges of §4.2, pnlib.color), as plain floats
AB_SCALE = tuple(2.0 / (hi - lo) for lo, hi in LAB_RANGES[1:])
AB_OFFSET = tuple(-1.0 - 2.0 * lo / (hi - lo) for lo, hi in LAB_RANGES[1:])


def ab_scale_offset(like: torch.Tensor):
    """(s, o), each ``(2,)`` on ``like``'s device and dtype: normalised = s · raw + o for a and b."""
    return (torch.tensor(AB_SCALE, dtype=like.dtype, device=like.device),
            torch.tensor(AB_OFFSET, dtype=like.dtype, device=like.device))


def _affine_to_normalised(A11, A12, A21, A22, b1, b2):
    """A raw-ab affine map z -> A z + β as the same map on normalised ab (u = s z + o per channel)."""
    (sa, sb), (oa, ob) = AB_SCALE, AB_OFFSET
    # u' = S (A S⁻¹ (u - o) + β) + o = (S A S⁻¹) u + S β + o - S A S⁻¹ o
    N11, N12, N21, N22 = A11, A12 * sa / sb, A21 * sb / sa, A22
    n1 = sa * b1 + oa - (N11 * oa + N12 * ob)
    n2 = sb * b2 + ob - (N21 * oa + N22 * ob)
    return torch.stack([N11, N12, N21, N22, n1, n2], 1)


def affine_to_raw(t: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_affine_to_normalised`: (A, β) on normalised ab ``(n, 6, h, w)`` -> on raw ab."""
    (sa, sb), (oa, ob) = AB_SCALE, AB_OFFSET
    N11, N12, N21, N22, n1, n2 = t.unbind(1)
    # u' = N u + n with u = s z + o  =>  z' = (S⁻¹ N S) z + S⁻¹ (N o + n - o)
    b1 = (N11 * oa + N12 * ob + n1 - oa) / sa
    b2 = (N21 * oa + N22 * ob + n2 - ob) / sb
    return torch.stack([N11, N12 * sb / sa, N21 * sa / sb, N22, b1, b2], 1)
