"""Per-region training tuples (ours, not in the paper): each palette region of a crop gets its own hue shift.

The paper's training tuples (§3.3) are global hue shifts (eq. 10): every colour of the palette turns by
one angle, so nothing in them says which region of the photo a palette colour belongs to. Our palette
head's colour-distance prior already predicts such a target, up to how sharp its weights are, and its
learned corrections get no signal. :class:`RegionTuples` (``train --regions SHARE``; config ``regions``,
``region_radius``, ``region_blur``, ``region_eps``, ``region_merge``) gives a share of the tuples one
angle per palette entry instead, applied to that entry's region of the crop; :class:`PastedPairs`
(setting ``pasted``) pastes two crops and turns each side by its own angle. benchmarks/RESULTS.md
("Training that tells regions apart") has what it did: better adherence at equal L than the untrained
prior, but more stray edges; no setting tried beat the prior on both. Imports data and correspondence.
"""
import torch
import torch.nn.functional as F

from .color import hue_shift, normalize_lab, rgb_to_lab
from .correspondence import box_mean, guided_filter
from .data import SHIFTS, _lab_norm
from .palette import palette_lab_norm


class RegionTuples:
    """A :class:`pnlib.data.PairSampler` ``extra``: per-region tuples for a share ``share`` of each batch.

    ``radius``, ``blur``, ``eps``: :func:`region_weights`; ``merge``: :func:`merged_entries` (0: each
    entry its own angle).
    """

    def __init__(self, share: float, radius: int = 2, blur: int = 3, eps: float = 1e-2, merge: float = 0.0):
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"regions must be a share in [0, 1], got {share}")
        if int(radius) < 0 or int(blur) < 0:
            raise ValueError(f"region_radius and region_blur must be >= 0, got {radius}, {blur}")
        self.share, self.region_radius, self.region_blur = float(share), int(radius), int(blur)
        self.region_eps, self.region_merge = float(eps), float(merge)

    def __call__(self, out: dict, rgb: torch.Tensor, pal: torch.Tensor, lab_s: torch.Tensor,
                 g: torch.Generator) -> None:
        """Turn a share ``share`` of the batch into per-region tuples, in place (ours, not in the paper).

        A global hue shift (eq. 10) moves every colour by one angle, so it never tells which region a
        palette colour belongs to: the palette head's colour-distance prior already predicts such a
        target up to how sharp its weights are, and the weights' corrections get no signal. Here each palette
        entry k gets its own target angle t_k (uniform over :data:`SHIFTS`); every pixel of the crop is
        given to its region (:func:`region_weights`: the nearest entry, cleaned up by a spatial majority
        vote and softened at the seams), and I_t blends the six hue-shifted crops hue_shift(crop, t_k)
        (eq. 10 per entry, so L stays the source's) with those weights; P_t,k = hue_shift(P_j,k, t_k).
        The regions are spatially coherent and harder than the prior's soft weights, which is what the
        network can learn and the prior lacks. I_s, P_s stay the global s-shift of the crop. With
        ``region_merge`` > 0, entries of similar colour (:func:`merged_entries`) share one angle, so no
        sharp seam is asked for between them.

        What it did (quick preset, 1,500 phase-1 steps, 14 held-out photos at 144×216): adherence at equal
        L 6.08 against the untrained prior's 6.96 (paper-style training: 6.35), but stray edges 2.99 %
        against 0.85 % (1.89 %). Every variant tried (share 1.0, larger radius, softer seams, merged
        entries, grad_loss) fell on the curve that merely sharpening the prior (a smaller τ) traces
        between the two numbers: the network learns sharper weights, not the regions' spatial coherence.

        Adds ``regions`` (B,) bool (which rows) and ``shift_tk`` (B, 6) each entry's target angle in
        degrees (``shift_t`` on every entry for the other rows); replaces ``I_t`` and ``P_t`` on those rows.
        """
        B, K = len(rgb), pal.shape[-2]
        rows = torch.rand(B, generator=g) < self.share
        tk = torch.tensor(SHIFTS, dtype=torch.float32)[torch.randint(len(SHIFTS), (B, K), generator=g)]
        dev = rgb.device
        shift_tk = out["shift_t"][:, None].expand(B, K).clone()
        i = rows.nonzero()[:, 0].to(dev)
        if len(i):
            n, (H, W) = len(i), rgb.shape[-2:]
            ang = tk.to(dev)[i]                                                   # (n, K)
            if self.region_merge:  # entries closer than region_merge x their mean distance share an angle
                ang = ang.gather(1, merged_entries(rgb_to_lab(pal[i], dim=-1), self.region_merge))
            shift_tk[i] = ang
            w = region_weights(rgb_to_lab(rgb[i]), rgb_to_lab(pal[i], dim=-1), self.region_radius, self.region_blur,
                               self.region_eps)
            shifted = hue_shift(rgb[i].repeat_interleave(K, 0), ang.flatten()).view(n, K, 3, H, W)
            ab = (w[:, :, None] * shifted[:, :, 1:]).sum(1)                        # (n, 2, H, W)
            out["I_t"][i] = _lab_norm(torch.cat([lab_s[i, :1], ab], 1))           # L: the source's (eq. 10)
            out["P_t"][i] = palette_lab_norm(pal[i].reshape(n * K, 1, 3), ang.flatten()).view(n, K, 3)
        out["regions"], out["shift_tk"] = rows.to(dev), shift_tk


def merged_entries(pal_lab: torch.Tensor, share: float) -> torch.Tensor:
    """(N, K) long: for each palette entry the lowest index of its group, where entries closer (raw LAB)
    than ``share`` x the palette's mean distance between entries are linked, transitively."""
    K = pal_lab.shape[-2]
    d = torch.cdist(pal_lab, pal_lab)                                            # (N, K, K)
    link = (d < share * d.sum((1, 2), keepdim=True) / (K * (K - 1))) | torch.eye(K, dtype=torch.bool, device=d.device)
    lab = torch.arange(K, device=pal_lab.device).expand(len(pal_lab), K)
    for _ in range(K):
        lab = torch.where(link, lab[:, None, :], K).amin(-1)
    return lab


def region_weights(lab: torch.Tensor, pal_lab: torch.Tensor, radius: int = 2, blur: int = 3,
                   eps: float = 1e-2) -> torch.Tensor:
    """Which palette region each pixel belongs to, for the per-region tuples (ours; :class:`PairSampler`).

    ``lab`` (N, 3, H, W) and ``pal_lab`` (N, K, 3): raw LAB. Each pixel goes to its nearest entry (the
    prior's distance, but hard), then to the entry most of its (2 ``radius`` + 1)² neighbours went to (a
    majority vote: specks join the region around them). The one-hot map is then softened by a guided
    filter of radius ``blur`` guided by the image's colour (:func:`pnlib.correspondence.guided_filter`,
    ``eps`` on normalised LAB): a seam inside a smooth gradient (a sky spanning two entries) becomes a
    ramp, not a step, while a seam on an edge of the image stays sharp. Returns weights (N, K, H, W) >= 0
    that sum to 1 over K.
    """
    K = pal_lab.shape[-2]
    d2 = (lab[:, None] - pal_lab[..., None, None]).square().sum(2)               # (N, K, H, W)
    w = F.one_hot(d2.argmin(1), K).movedim(-1, 1).to(lab.dtype)
    if radius:
        w = F.one_hot(box_mean(w, radius).argmax(1), K).movedim(-1, 1).to(lab.dtype)
    if blur:
        w = guided_filter(w, normalize_lab(lab), blur, eps).clamp_min_(0)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-6)
    return w


class PastedPairs:
    """A :class:`pnlib.data.PairSampler` ``extra``: pasted photo pairs for a share ``share`` of each batch
    (ours, not in the paper).

    Row b's crop and the next row's crop are pasted along a random straight seam (vertical or horizontal,
    at 30-70 % of the side): I_j = M·crop_b + (1 − M)·crop_b+1. Its palette is the three largest colours
    of each photo's palette (entries 0-2 from b, 3-5 from b+1), so every entry belongs to one side.
    I_s, P_s: the global s-shift of the pasted crop, as for any tuple; the target turns each side by its own
    angle, I_t = M·hue_shift(I_j, t_A) + (1 − M)·hue_shift(I_j, t_B) (L kept, eq. 10), and P_t entries
    0-2 by t_A, 3-5 by t_B. A colour-distance prior sends every pixel with the colour of B's entries by
    B's angle, wherever it is: only where the pixel *is* says which angle is right. Adds ``pasted`` (B,)
    bool (which rows) and ``shift_sides`` (B, 2): t_A, t_B in degrees.
    """

    def __init__(self, share: float):
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"pasted must be a share in [0, 1], got {share}")
        self.share = float(share)

    def __call__(self, out: dict, rgb: torch.Tensor, pal: torch.Tensor, lab_s: torch.Tensor,
                 g: torch.Generator) -> None:
        B, (H, W) = len(rgb), rgb.shape[-2:]
        rows = torch.rand(B, generator=g) < self.share
        t = torch.tensor(SHIFTS, dtype=torch.float32)[torch.randint(len(SHIFTS), (B, 2), generator=g)]
        seam, across = 0.3 + 0.4 * torch.rand(B, generator=g), torch.rand(B, generator=g) < 0.5
        dev = rgb.device
        i = rows.nonzero()[:, 0]
        if len(i):
            n = len(i)
            x = (torch.arange(W) + 0.5) / W
            y = (torch.arange(H) + 0.5) / H
            M = torch.where(across[i, None, None], x[None, None, :] < seam[i, None, None],
                            y[None, :, None] < seam[i, None, None]).to(rgb.dtype)[:, None].to(dev)  # (n, 1, H, W)
            j, k = i.to(dev), ((i + 1) % B).to(dev)
            pasted = M * rgb[j] + (1 - M) * rgb[k]
            P_j = torch.cat([pal[j, :3], pal[k, :3]], 1)                                      # (n, 6, 3)
            s, (tA, tB) = out["shift_s"][j], t[i].to(dev).unbind(1)
            shifted = hue_shift(torch.cat([pasted, pasted, pasted]), torch.cat([s, tA, tB]))
            out["I_s"][j] = _lab_norm(shifted[:n])
            out["I_t"][j] = _lab_norm(M * shifted[n:2 * n] + (1 - M) * shifted[2 * n:])
            ang = torch.cat([tA[:, None].expand(n, 3), tB[:, None].expand(n, 3)], 1)         # (n, 6)
            out["P_t"][j] = palette_lab_norm(P_j.reshape(n * 6, 1, 3), ang.flatten()).view(n, 6, 3)
            if "P_s" in out:
                out["P_s"][j] = palette_lab_norm(P_j, s)
            out["rgb"][j] = pasted
        out["pasted"], out["shift_sides"] = rows.to(dev), t.to(dev)
