"""Colour science in torch: sRGB <-> CIELAB <-> HSV, LAB normalisation, and the hue shift of eq. (10).

PaletteNet works in CIELAB (§2): the network sees I_s in LAB, predicts only the chroma Îab_t and puts the
source luminance I^L_s back. Training pairs come from the colour augmentation of §4.1, eq. (10):

    RGB -> LAB and cache L
    RGB -> HSV --hue-shift--> H*SV -> L*A*B*
    final hue-shifted image: L A*B*          (the cached L with the new chroma)

Every function here is batched, runs on any device, keeps float32 / float64, and takes the channel axis
as ``dim`` (default -3: images ``(N, 3, H, W)``; palettes ``(N, 6, 3)`` use ``dim=-1``). The formulas
and constants are scikit-image's (D65, 2° observer), so ``rgb_to_lab`` equals ``skimage.color.rgb2lab``
(tests check it to 1e-4 in float64), but a batch of 18 hue shifts runs as one tensor expression.

RGB is sRGB in [0, 1]; LAB is in raw units (L in [0, 100]) unless a name says ``norm``; HSV has all three
channels in [0, 1] (hue 1.0 = 360°), as in skimage.
"""
from __future__ import annotations

import torch

# sRGB (linear) -> XYZ, D65, and the D65 / 2° reference white: skimage.color.colorconv's values.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)

#: The LAB ranges of §4.2, mapped linearly to [-1, 1] by :func:`normalize_lab`.
LAB_RANGES = ((0.0, 100.0), (-86.185, 98.254), (-107.863, 94.482))


def _consts(x: torch.Tensor):
    m = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)
    white = torch.tensor(_WHITE_D65, dtype=torch.float64)
    kw = dict(dtype=x.dtype, device=x.device)
    return m.to(**kw), torch.linalg.inv(m).to(**kw), white.to(**kw)


def _check(x: torch.Tensor, dim: int, name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor (RGB in [0, 1]), got {x.dtype}")
    if x.shape[dim] != 3:
        raise ValueError(f"{name} must have 3 channels on dim {dim}, got shape {tuple(x.shape)}")


def _matmul(x: torch.Tensor, m: torch.Tensor, dim: int) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel axis ``dim`` (weighted sums: faster than a strided matmul)."""
    c = x.unbind(dim)
    rows = []
    for r in m.tolist():
        out = c[0] * r[0]
        rows.append(out.add_(c[1], alpha=r[1]).add_(c[2], alpha=r[2]))
    return torch.stack(rows, dim)


def rgb_to_lab(rgb: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """sRGB in [0, 1] -> CIELAB (L in [0, 100]), as ``skimage.color.rgb2lab``."""
    _check(rgb, dim, "rgb")
    m, _, white = _consts(rgb)
    # sRGB companding -> linear RGB; the clamp keeps pow's argument valid in the unused branch.
    lin = torch.where(rgb > 0.04045, rgb.clamp_min(0.04045).add(0.055).div_(1.055).pow_(2.4), rgb / 12.92)
    xyz = _matmul(lin, m / white[:, None], dim)  # XYZ already divided by the reference white
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856).pow_(1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim)


def lab_to_rgb(lab: torch.Tensor, dim: int = -3, clip: bool = True) -> torch.Tensor:
    """CIELAB -> sRGB, as ``skimage.color.lab2rgb``.

    ``clip=True`` (skimage's behaviour) clips to the displayable gamut [0, 1]; ``clip=False`` returns the
    raw values so a caller can see how far a colour lies outside the sRGB gamut.
    """
    _check(lab, dim, "lab")
    _, m_inv, white = _consts(lab)
    L, a, b = lab.unbind(dim)
    fy = (L + 16.0) / 116.0
    # skimage sets z < 0 (b too large for this L) to 0 before the inverse companding.
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0.0)], dim)
    xyz = torch.where(f > 0.2068966, f.clamp_min(0.2068966) ** 3, (f - 16.0 / 116.0) / 7.787)
    lin = _matmul(xyz, m_inv * white[None, :], dim)  # scale by the white point, then XYZ -> linear RGB
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0.0, 1.0) if clip else rgb


# --------------------------------------------------------------------------------------------------
# Full-resolution photos: uint8 in, uint8 out, one block of rows at a time (pnlib.inference.render_full)
# --------------------------------------------------------------------------------------------------

def _blend(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``where(mask, a, b)`` for a float ``mask`` of 0 / 1, in place in ``b`` (a and b: fresh tensors).

    On a CPU ``torch.where`` costs ~40x an add per element here; three in-place ops do not.
    """
    return b.add_(a.sub_(b).mul_(mask))


def _srgb_lut() -> torch.Tensor:
    """sRGB uint8 -> linear RGB, the 256 values of :func:`rgb_to_lab`'s companding (float64, then float32)."""
    c = torch.arange(256, dtype=torch.float64) / 255.0
    return torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92).float()


_LUT = {}


def uint8_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 sRGB ``(..., 3)`` (channel last, as a decoded photo) -> float32 raw LAB ``(3, ...)``.

    :func:`rgb_to_lab` of ``rgb / 255`` (to float32 rounding): the companding is a table of 256 values,
    and no ``torch.where``, so a block of a 48 MP photo converts several times faster.
    """
    if "srgb" not in _LUT:
        _LUT["srgb"] = _srgb_lut()
    lin = _LUT["srgb"].to(rgb.device).take(rgb.movedim(-1, 0).long())      # (3, ...) linear RGB
    m, _, white = _consts(lin)
    xyz = _matmul(lin, m / white[:, None], 0)
    big = (xyz > 0.008856).float()
    f = _blend(big, xyz.clamp_min(0.008856).pow_(1.0 / 3.0), xyz.mul(7.787).add_(16.0 / 116.0))
    fx, fy, fz = f.unbind(0)
    return torch.stack([fy.mul(116.0).sub_(16.0), (fx - fy).mul_(500.0), (fy - fz).mul_(200.0)], 0)


def lab_to_uint8(lab: torch.Tensor) -> torch.Tensor:
    """Raw LAB ``(3, ...)`` -> uint8 sRGB ``(..., 3)``: :func:`to_uint8` of ``lab_to_rgb(lab, clip=True)``
    (to float32 rounding), moved channel last, without ``torch.where``; what the recoloured photo is."""
    _, m_inv, white = _consts(lab)
    L, a, b = lab.unbind(0)
    fy = (L + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min_(0.0)], 0)
    cube = (f > 0.2068966).float()
    fc = f.clamp_min(0.2068966)
    xyz = _blend(cube, fc * fc * fc, f.sub(16.0 / 116.0).div_(7.787))
    lin = _matmul(xyz, m_inv * white[None, :], 0)
    gamma = (lin > 0.0031308).float()
    rgb = _blend(gamma, lin.clamp_min(0.0031308).pow_(1 / 2.4).mul_(1.055).sub_(0.055), lin.mul(12.92))
    return rgb.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).movedim(0, -1)


def rgb_to_hsv(rgb: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """sRGB -> HSV, all channels in [0, 1], as ``skimage.color.rgb2hsv`` (hue 0 where it is undefined)."""
    _check(rgb, dim, "rgb")
    r, g, b = rgb.unbind(dim)
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    # skimage's precedence when two channels tie for the maximum: blue, then green, then red.
    h = torch.where(b == v, 4.0 + (r - g) / safe, torch.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    s = torch.where(delta > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack([h, s, v], dim)


def hsv_to_rgb(hsv: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """HSV (all in [0, 1]) -> sRGB, as ``skimage.color.hsv2rgb``.

    Closed form of the six-sector table: channel c = V - V*S*clamp(min(k, 4 - k), 0, 1) with
    k = (n_c + 6H) mod 6 and n = (5, 3, 1) for (R, G, B).
    """
    _check(hsv, dim, "hsv")
    return _hsv_parts_to_rgb(*(hsv.narrow(dim, i, 1) for i in range(3)), dim)


def _hsv_parts_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """hsv_to_rgb on separate (broadcastable) H, S, V, each with a channel axis of size 1."""
    shape = [1] * h.ndim
    shape[dim] = 3
    n = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device).reshape(shape)
    k = h * 6.0 + n
    k = k.sub_(torch.floor(k * (1 / 6.0)).mul_(6.0))  # k mod 6 (cheaper than remainder; H may exceed 1)
    return v - (v * s) * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def normalize_lab(lab: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Raw LAB -> [-1, 1] per channel with the ranges of §4.2 (:data:`LAB_RANGES`)."""
    lo, hi = _ranges(lab, dim)
    return 2.0 * (lab - lo) / (hi - lo) - 1.0


def denormalize_lab(lab_norm: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Inverse of :func:`normalize_lab`."""
    lo, hi = _ranges(lab_norm, dim)
    return (lab_norm + 1.0) * 0.5 * (hi - lo) + lo


def to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """Float sRGB (any shape) -> uint8 0-255 of the same shape: clipped to [0, 1], rounded to nearest."""
    return rgb.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


def _ranges(x: torch.Tensor, dim: int):
    shape = [1] * x.ndim
    shape[dim] = 3
    r = torch.tensor(LAB_RANGES, dtype=x.dtype, device=x.device)
    return r[:, 0].reshape(shape), r[:, 1].reshape(shape)


def _angles(degrees, x: torch.Tensor) -> torch.Tensor:
    """``degrees`` as a tensor broadcastable against ``x`` (channel axis removed) along the leading axis."""
    deg = torch.as_tensor(degrees, dtype=x.dtype, device=x.device)
    if deg.ndim == 0:
        return deg
    if deg.ndim > 1:
        raise ValueError(f"degrees must be a number or one angle per sample, got shape {tuple(deg.shape)}")
    if x.ndim == 0 or x.shape[0] not in (1, deg.shape[0]):
        raise ValueError(f"got {deg.shape[0]} angles for a batch of {x.shape[0] if x.ndim else 1}")
    return deg.reshape(-1, *([1] * (x.ndim - 1)))


def _shift_hsv(rgb: torch.Tensor, degrees, dim: int) -> torch.Tensor:
    """RGB -> HSV, rotate H by ``degrees``, -> RGB."""
    h, s, v = (c.unsqueeze(dim) for c in rgb_to_hsv(rgb, dim).unbind(dim))
    deg = _angles(degrees, h.squeeze(dim) if h.ndim > 1 else h)
    deg = deg.unsqueeze(dim) if deg.ndim else deg
    # S and V are untouched by the rotation: with one source and K angles they broadcast, not copy.
    return _hsv_parts_to_rgb(h + deg / 360.0, s, v, dim)  # the sector arithmetic wraps H


def hue_shift(rgb: torch.Tensor, degrees, dim: int = -3) -> torch.Tensor:
    """The luminance-preserving colour augmentation of §4.1, eq. (10); returns LAB (raw units).

    RGB -> LAB and cache L; RGB -> HSV, shift H, -> RGB -> LAB; put the cached L back. The result keeps
    the source's L exactly; its chroma is the hue-shifted one. It may lie slightly outside the sRGB gamut
    (new chroma, old luminance): ``lab_to_rgb(out, clip=True)`` displays it. Images and palettes are
    shifted by this same function (§4.1: "the corresponding palette ... is also hue-shifted by the same
    amount"), a palette with ``dim=-1``.

    ``degrees``: one angle, or a 1-D tensor/list with one angle per sample of the leading axis. A batch of
    one with K angles gives its K shifted copies (L and HSV of the source are computed once), e.g. the 18
    augmented copies of a photo: ``hue_shift(rgb[None], torch.arange(18) * 20.0)``.
    """
    _check(rgb, dim, "rgb")
    rows = max(1, _BLOCK // (rgb[..., 0, :].numel() * _n_out(rgb, degrees))) if rgb.ndim >= 3 else 0
    if dim % rgb.ndim == rgb.ndim - 3 and rgb.device.type == "cpu" and rgb.shape[-2] > rows:
        # Large images on a CPU: the same computation on blocks of rows. It is memory-bound, and blocks
        # that stay in the cache make 18 shifts of a 288x432 photo about 1.8x faster.
        return torch.cat([hue_shift(rgb[..., i:i + rows, :], degrees, dim) for i in range(0, rgb.shape[-2], rows)], -2)
    out = rgb_to_lab(_shift_hsv(rgb, degrees, dim), dim)
    out.narrow(dim, 0, 1).copy_(rgb_to_lab(rgb, dim).narrow(dim, 0, 1))  # the cached L, eq. (10)
    return out


_BLOCK = 1 << 18  # elements per row block (x 3 channels x 4 bytes = 3 MB)


def _n_out(rgb: torch.Tensor, degrees) -> int:
    """How many output images one input image becomes (K angles for a batch of one, else 1)."""
    n = torch.as_tensor(degrees).numel()
    return n if rgb.ndim == 4 and rgb.shape[0] == 1 and n > 1 else 1


def naive_hue_shift(rgb: torch.Tensor, degrees, dim: int = -3) -> torch.Tensor:
    """The naive HSV hue shift of Fig. 5(c): L is *not* restored, so luminance drifts. Returns LAB."""
    _check(rgb, dim, "rgb")
    return rgb_to_lab(_shift_hsv(rgb, degrees, dim), dim)
