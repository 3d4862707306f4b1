"""Evaluation metrics: CIEDE2000 colour difference, luminance error, palette distance and adherence.

Every colour difference here is CIEDE2000 (ΔE00; Sharma, Wu & Dalal 2005, as
``skimage.color.deltaE_ciede2000``): about 1 is a just-noticeable difference, 2-10 "visible at a
glance", 20+ "a different colour". The metrics compare what a viewer sees:

- image metrics take raw LAB tensors (L in [0, 100]) and, by default, first map both to the *displayed*
  colour: LAB -> sRGB clipped to [0, 1] -> LAB. A predicted chroma Îab_t outside the sRGB gamut is
  shown clipped, so it is scored clipped; two LAB values that display the same score 0.
- palette metrics take ``(k, 3)`` sRGB palettes in [0, 1] (always displayable) and compare them as sets:
  the best one-to-one matching of their colours (Hungarian algorithm), since a palette extracted from
  an image has no natural order that matches a designer's.

Lower layer: imports only :mod:`pnlib.color` and :mod:`pnlib.palette`.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.color import deltaE_ciede2000

from .color import lab_to_rgb, rgb_to_lab
from .palette import extract_palette, match_colors

__all__ = ["display_lab", "delta_e00", "mean_delta_e00", "per_image_delta_e00", "luminance_error",
           "palette_distance", "palette_adherence", "stray_edges"]


def display_lab(lab: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """The LAB colour a screen shows for ``lab``: LAB -> sRGB clipped to [0, 1] -> LAB.

    In-gamut colours come back unchanged (to float rounding); out-of-gamut ones move to the clipped colour.
    """
    return rgb_to_lab(lab_to_rgb(lab, dim=dim, clip=True), dim=dim)


def _as_lab(x, name: str) -> torch.Tensor:
    if not torch.is_tensor(x):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float LAB tensor, got {x.dtype}")
    return x


def delta_e00(lab_a: torch.Tensor, lab_b: torch.Tensor, dim: int = -3, display: bool = True) -> torch.Tensor:
    """Per-pixel CIEDE2000 between two LAB images (raw units), as displayed in sRGB.

    ``lab_a``, ``lab_b``: same shape, channel axis ``dim`` (default -3: ``(N, 3, H, W)``; ``dim=-1`` for
    ``(..., 3)`` colours). With ``display=True`` (the default) each input is first mapped to its displayed
    colour by :func:`display_lab` (LAB -> sRGB clipped -> LAB); ``display=False`` compares the LAB values
    as given (the plain CIEDE2000 formula, e.g. for the published test data).

    Returns ΔE00 of every pixel: the input shape without the channel axis (``(N, H, W)`` for images), in
    the dtype and on the device of ``lab_a``. Computed in float64 with scikit-image.
    """
    a, b = _as_lab(lab_a, "lab_a"), _as_lab(lab_b, "lab_b")
    if a.shape != b.shape:
        raise ValueError(f"delta_e00 wants two LAB tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[dim] != 3:
        raise ValueError(f"delta_e00 wants 3 LAB channels on dim {dim}, got shape {tuple(a.shape)}")
    a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
    if display:
        a64, b64 = display_lab(a64, dim), display_lab(b64, dim)
    de = deltaE_ciede2000(a64.movedim(dim, -1).numpy(), b64.movedim(dim, -1).numpy(), channel_axis=-1)
    return torch.from_numpy(np.ascontiguousarray(de)).to(dtype=a.dtype, device=a.device)


def mean_delta_e00(lab_a: torch.Tensor, lab_b: torch.Tensor, dim: int = -3, display: bool = True) -> float:
    """Mean of :func:`delta_e00` over every pixel of every image (one number for the whole batch)."""
    return float(delta_e00(lab_a, lab_b, dim=dim, display=display).double().mean())


def per_image_delta_e00(lab_a: torch.Tensor, lab_b: torch.Tensor, display: bool = True) -> torch.Tensor:
    """Mean ΔE00 of each image of an ``(N, 3, H, W)`` pair -> ``(N,)``: the mean over its H·W pixels.

    Take the median of this over images for a protocol number robust to a few failed images.
    """
    if lab_a.ndim != 4:
        raise ValueError(f"per_image_delta_e00 wants (N, 3, H, W) LAB images, got shape {tuple(lab_a.shape)}")
    return delta_e00(lab_a, lab_b, dim=-3, display=display).flatten(1).mean(1)


def luminance_error(lab_out: torch.Tensor, lab_src: torch.Tensor, dim: int = -3, display: bool = False) -> float:
    """Mean absolute luminance change |L_out - L_src| (raw L units, 0-100) over every pixel of every image.

    PaletteNet keeps the source luminance by construction (§2: it predicts only Îab_t and puts I^L_s
    back), so its error is 0 on the LAB it returns; a method that recolours in RGB is not. With
    ``display=True`` both are first mapped to the displayed colour (:func:`display_lab`): that measures
    the luminance a viewer sees, which gamut clipping of a new chroma may move.
    """
    a, b = _as_lab(lab_out, "lab_out"), _as_lab(lab_src, "lab_src")
    if a.shape != b.shape:
        raise ValueError(f"luminance_error wants two LAB tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    if display:
        a, b = display_lab(a, dim), display_lab(b, dim)
    return float((a.select(dim, 0) - b.select(dim, 0)).abs().mean())


def _palette_lab(p, name: str) -> np.ndarray:
    t = p.detach().cpu().double() if torch.is_tensor(p) else torch.as_tensor(np.asarray(p, dtype=np.float64))
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{name} must be a (k, 3) RGB palette, got shape {tuple(t.shape)}")
    return rgb_to_lab(t.clamp(0.0, 1.0), dim=-1).numpy()


def palette_distance(palette_a, palette_b, equal_lightness: bool = False) -> float:
    """Set distance of two ``(k, 3)`` RGB palettes (in [0, 1]): mean ΔE00 under the best matching.

    The k × k matrix of CIEDE2000 between every colour of ``palette_a`` and every colour of
    ``palette_b`` (in LAB) is solved as an assignment problem (:func:`pnlib.palette.match_colors`):
    the one-to-one pairing with the least total ΔE00. The result is the mean ΔE00 of the k matched
    pairs, so it does not depend on the order of either palette, and it is 0 only for the same set.

    ``equal_lightness=True`` compares chroma and hue only: each colour of ``palette_a`` is given the L
    of the colour of ``palette_b`` it is compared with (for matching and score alike). A recolouring
    that keeps the photo's luminance (PaletteNet, eq. 2) is then not charged for a target whose
    lightnesses differ from the photo's.
    """
    a, b = _palette_lab(palette_a, "palette_a"), _palette_lab(palette_b, "palette_b")
    if a.shape != b.shape:
        raise ValueError(f"palette_distance wants two palettes of equal size, got {a.shape[0]} and {b.shape[0]} "
                         "colours")
    rows, cols, cost = match_colors(a, b, equal_lightness)
    return float(cost[rows, cols].mean())


def palette_adherence(rgb_out: torch.Tensor, target_palette, equal_lightness: bool = False,
                      **extract_kwargs) -> float:
    """How well a recoloured image I_o shows the target palette P_t: ΔE00, lower is better.

    The palette of ``rgb_out`` (a ``(3, H, W)`` RGB image in [0, 1]) is extracted with
    :func:`pnlib.palette.extract_palette` (k-means in LAB, k = the target's size, fixed seed; keyword
    arguments go to it) and compared with ``target_palette`` (``(k, 3)`` RGB) by
    :func:`palette_distance`: the mean ΔE00 over the k best-matched colour pairs (``equal_lightness``:
    chroma and hue only, see there).
    """
    target = target_palette.detach().cpu().double() if torch.is_tensor(target_palette) \
        else torch.as_tensor(np.asarray(target_palette, dtype=np.float64))
    extracted = extract_palette(rgb_out.detach().cpu().float(), k=target.shape[0], **extract_kwargs)
    return palette_distance(extracted, target, equal_lightness)


def _gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|∇x| of ``(N, C, H, W)`` by forward differences over all channels -> ``(N, H-1, W-1)``."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.square() + dy.square()).sum(-3).sqrt()


def stray_edges(lab_out: torch.Tensor, lab_src: torch.Tensor, gain: float = 2.0, slack: float = 2.0
                ) -> torch.Tensor:
    """Share of pixels where the output's colour jumps but the source does not: posterisation, bleeding.

    A recolouring should change colours, not structure: between two neighbouring pixels the output's
    chroma may change by more than the source's colour does only by a bounded factor (a hue shift
    turns every chroma step, a chroma change scales it). A pixel is *stray* when
    |∇ab_out| > ``gain`` · |∇LAB_src| + ``slack`` (forward differences, LAB units per pixel): a band
    edge in a smooth sky (posterisation) or a colour boundary off the object's own edge (bleeding).
    The unchanged source scores 0. ``lab_out``, ``lab_src``: raw LAB ``(N, 3, H, W)`` of one size.
    Returns ``(N,)``: the share of stray pixels of each image, in [0, 1] (lower is better).
    """
    if lab_out.shape != lab_src.shape or lab_out.ndim != 4:
        raise ValueError(f"stray_edges wants two (N, 3, H, W) LAB images of one shape, got "
                         f"{tuple(lab_out.shape)} and {tuple(lab_src.shape)}")
    g_src = _gradient_magnitude(lab_src.double())                             # (N, H-1, W-1)
    g_out = _gradient_magnitude(lab_out.double()[:, 1:])
    return (g_out > gain * g_src + slack).flatten(1).double().mean(1)
