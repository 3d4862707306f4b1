"""Recolor a photo with a trained PaletteNet: load the model, read any image, run it at any size (§2, §4.3).

    Î_t = [I^L_s, Îab_t],   Îab_t = G(I_s, P_t) = RD(FE(I_s), P_t)            (2)

The network sees the source I_s and the target palette P_t in normalised LAB (§4.2) and predicts only
the chroma Îab_t; the luminance of the result is the source's own I^L_s. So :func:`recolor` returns a
photo whose L equals the source's up to sRGB gamut clipping (a new chroma at the old L can fall
outside the displayable gamut; ``lab_to_rgb(clip=True)`` brings it back in).

Public API (also ``pnlib.load_model`` / ``pnlib.recolor``):

* :func:`load_model` -- a :class:`~pnlib.model.PaletteNet` in eval mode from a pnlib checkpoint
  (default: the shipped ``pnlib/checkpoints/palettenet.pt``, made by ``python -m pnlib export``);
* :func:`optimize_for_inference` -- the same model, faster on a CPU (what ``load_model`` returns);
* :func:`load_image` -- a path, PIL image, numpy array or tensor -> ``(3, H, W)`` RGB in [0, 1];
* :func:`recolor` -- image + six colours -> ``uint8 (H, W, 3)`` of the same size (the network at a
  working resolution, ``work_size``; its per-pixel colour transform upsampled to the full size);
* :func:`recolor_palettes` -- one image, many palettes, FE run once (eq. 2);
* :func:`palette_of` -- the extracted palette of a photo (``--palette-from``);
* :class:`PalettePreview` -- one photo, FE once, then a palette at a time at a preview size (the
  palette sliders of pnlib.widgets, without any UI).

Reads checkpoints through :mod:`pnlib.checkpoint`; it never imports the training loop.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import generator_from_state, read_checkpoint
from .color import lab_to_uint8, normalize_lab, rgb_to_lab, uint8_to_lab
from .config import SHIPPED, SHIPPED_MODELS, resolve_device
from .correspondence import ab_scale_offset, affine_to_raw
from .model import PaletteNet, crop_to, input_memory_format, pad_to_multiple
from .palette import extract_palette, match_palette, palette_lab_norm, parse_palette
from .photos import MAX_SIDE, load_image, load_pixels  # noqa: F401 - load_image: this module's API too

_HOW_TO_MAKE = ("make one with `python -m pnlib train` (runs/quick/) and then "
                "`python -m pnlib export runs/quick/checkpoint.pt pnlib/checkpoints/palettenet.pt`, "
                "or pass a checkpoint path")

_models: dict = {}  # (resolved path, mtime, device) -> model: the shipped model is read once


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------

def load_model(path=None, device="auto") -> PaletteNet:
    """A trained :class:`PaletteNet` G = RD ∘ FE (eq. 2) in eval mode, on ``device`` ("auto": CUDA/MPS/CPU).

    ``path``: a pnlib checkpoint (a training run's ``checkpoint.pt`` or an exported model), or the name
    of a shipped model (:data:`~pnlib.config.SHIPPED_MODELS`: ``"ours"``, the palette head, or
    ``"paper"``, the paper's head); ``None`` reads ours, :data:`SHIPPED`. The width comes from the
    checkpoint's config. Raises
    ``FileNotFoundError`` for a missing file (saying how to make the shipped one) and
    :class:`~pnlib.checkpoint.CheckpointMismatch` (a ``ValueError``) for a file that is not a pnlib checkpoint.
    The model is passed through :func:`optimize_for_inference` (same outputs and weights, faster).
    """
    path = shipped_path(path)
    if path == SHIPPED and not SHIPPED.is_file():
        raise FileNotFoundError(f"the shipped checkpoint {SHIPPED} is missing; {_HOW_TO_MAKE}")
    path = Path(path).expanduser()
    if not path.is_file():
        bare = len(path.parts) == 1 and not path.suffix  # a name, not a file
        hint = f" (choose a shipped model: {', '.join(SHIPPED_MODELS)})" if bare else ""
        raise FileNotFoundError(f"no checkpoint at {path}{hint}")
    G = generator_from_state(read_checkpoint(path), path)  # an old checkpoint: the paper's head
    return optimize_for_inference(G.to(resolve_device(device)).eval())


class _InstanceNormAsGroupNorm(nn.InstanceNorm2d):
    """InstanceNorm2d(affine=True) computed by ``F.group_norm`` with one channel per group.

    The same function with the same parameters (per image and channel: subtract the mean, divide by
    sqrt(biased variance + eps), then γ, β), but group_norm has a fast CPU kernel, also for
    channels_last, while instance_norm reshapes into a batch_norm call. Only for inference copies.
    """

    def forward(self, x):
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


def optimize_for_inference(model: PaletteNet) -> PaletteNet:
    """Make ``model`` faster for inference, in place, without changing what it computes; returns it.

    Measured on a 2-core CPU (see :func:`pnlib.bench.bench_recolor`): InstanceNorm through ``group_norm`` (same
    maths, one channel per group), in-place LeakyReLU (no extra tensor per layer), and channels_last
    weights (oneDNN's convolutions, above all RD's last 3×3 conv to two channels and the 4×4 deconvs,
    are much faster in NHWC). The weights and their names are untouched (``state_dict`` is the same),
    so training code can still load and save it. Off the CPU only the norm swap is applied.
    """
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is nn.InstanceNorm2d and child.affine and not child.track_running_stats:
                fast = _InstanceNormAsGroupNorm(child.num_features, eps=child.eps, affine=True)
                fast.weight, fast.bias = child.weight, child.bias
                setattr(module, name, fast)
            elif isinstance(child, nn.LeakyReLU):
                child.inplace = True  # its input is always a fresh norm output, never needed again
    if next(model.parameters()).device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def shipped_path(path) -> Path:
    """``None`` or a shipped model's name (:data:`~pnlib.config.SHIPPED_MODELS`) -> its file; a path as is."""
    if path is None:
        return SHIPPED
    if isinstance(path, str) and path in SHIPPED_MODELS:
        return SHIPPED_MODELS[path]
    return Path(path)


def cached_model(path=None, device="auto") -> PaletteNet:
    """load_model, read once per (file, modification time, device)."""
    p = shipped_path(path).expanduser().resolve()
    dev = resolve_device(device)
    key = (str(p), p.stat().st_mtime_ns if p.is_file() else None, str(dev))
    if key not in _models:
        _models[key] = load_model(path, dev)
    return _models[key]


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------

#: The long side at which :func:`recolor` runs the network (``work_size``); ``None``: the photo's own.
WORK_SIZE = 1024
#: Pixels (a seeded subsample) whose k-means gives a photo's palette P_s in :func:`palette_of`.
PALETTE_PIXELS = 20000
#: Pixels per row block of the full-resolution pass (colour conversion and transform): a few MB each.
ROW_BLOCK = 1 << 18


def palette_of(image) -> torch.Tensor:
    """The ``(6, 3)`` RGB palette of a photo (k-means in LAB, :func:`pnlib.palette.extract_palette`): the
    P_s that :func:`recolor` reads, so ``recolor(photo, palette_of(photo))`` gives the photo back.

    The one place a photo's P_s is decided: :func:`recolor`, :func:`recolor_palettes`,
    :class:`PalettePreview` and the palette sliders (:class:`pnlib.widgets.PaletteControl`) all read it.
    Extracted from the photo at a long side of at most :data:`~pnlib.photos.MAX_SIDE` (1024 px), as
    training extracts its photos' palettes: the palette does not depend on the size of the file or on
    ``work_size``, and a 48 MP photo is never held as floats (read as uint8, downscaled in row blocks).
    """
    return _Photo(image).palette()


# --------------------------------------------------------------------------------------------------
# Recolor
# --------------------------------------------------------------------------------------------------


def recolor(image, palette, model: PaletteNet | None = None, device="auto", match: bool = True,
            work_size: int | None = WORK_SIZE, net_scale: float | None = None) -> np.ndarray:
    """Recolor ``image`` to the six colours of ``palette``; returns ``uint8 (H, W, 3)``, the same size.

    ``image``: anything :func:`load_image` reads; ``palette``: anything
    :func:`~pnlib.palette.parse_palette` reads (``"#e63946,#f1faee,..."``, six CSS names, a (6, 3) array).
    ``model``: a PaletteNet (``None``: the shipped one, loaded once on ``device``). Any H×W works
    (the network's input is padded to multiples of 16 and its output cropped back). The output is
    ``lab_to_rgb([I^L_s, Îab_t])``: the source's L with the predicted chroma (§2), clipped to sRGB.

    ``work_size``: the network runs on the photo downscaled to this long side (never upscaled; ``None``:
    at full resolution), and what it predicts is upsampled (bilinear) to the full size: the per-pixel
    colour transform (A, β) of the affine and palette heads, applied to the photo's own full-resolution
    chroma, or Îab itself for the paper's direct head. L is the photo's own, exactly, at every pixel.
    The network's cost grows with its input; this keeps a 12 MP photo near a second and its memory
    bounded (the full-resolution pass runs in row blocks of :data:`ROW_BLOCK` pixels), as
    :class:`PalettePreview` does for the palette sliders; both share :func:`render_full`.

    ``net_scale`` (the palette head, ours): FE and RD run at this fraction of the working size (default
    :data:`NET_SCALE`, a half), their corrections to the weights taken up to the working size, where
    the weights read the photo's own detail. On 14 held-out photos: the adherence and hue shifts of
    ``net_scale=1`` (what ``python -m pnlib eval`` scores), 41 % fewer stray edges, a third less time.

    A model with the palette head (ours, the shipped one) also reads the photo's own palette P_s,
    extracted here (:func:`palette_of`, at a long side of at most 1024 px): the user gives only P_t.
    A palette comes in any order, so by default (``match=True``) its colours are first paired with
    P_s's by the least total ΔE00 (:func:`~pnlib.palette.match_palette`): each colour of the photo
    turns into the closest target colour still free. ``match=False`` keeps the order: colour i of
    ``palette`` replaces colour i of :func:`palette_of` (the photo's palette, largest share first), as
    the palette sliders do. The paper's model (direct head) is given the target in the same paired
    order (it was trained on palettes ordered like the photo's own, §3.3) but never reads P_s itself.
    """
    return recolor_palettes(image, [palette], model, device, batch=1, match=match, work_size=work_size,
                            net_scale=net_scale)[0]


def target_and_source(rgb: torch.Tensor, palette, model: PaletteNet, match: bool = True, src=None):
    """(P_t, P_s), ``(6, 3)`` each in normalised LAB, for ``model`` on photo ``rgb`` (P_s None if unread).

    P_s is the photo's palette (``src``, RGB, or :func:`palette_of` ``rgb``); with ``match`` the
    target's colours are reordered to pair with P_s's by least total ΔE00 (:func:`~pnlib.palette.match_palette`),
    for every head: the paper's (``direct``) was trained on target palettes ordered like the photo's own
    (hue shifts of P_j, largest share first), so it gets a user's palette in that order too.
    """
    target = parse_palette(palette.detach().cpu() if torch.is_tensor(palette) else palette)
    if not match and not model.uses_source_palette:
        return palette_lab_norm(target), None
    src = palette_of(rgb) if src is None else src
    if match:  # every head: the paper's was trained on P_t ordered like the photo's own palette (§3.3)
        target = match_palette(src, target)
    return palette_lab_norm(target), palette_lab_norm(src) if model.uses_source_palette else None


def recolor_palettes(image, palettes, model: PaletteNet | None = None, device="auto", batch: int = 8,
                     match: bool = True, work_size: int | None = WORK_SIZE, net_scale: float | None = None
                     ) -> np.ndarray:
    """One image, N palettes -> ``uint8 (N, H, W, 3)``: the same as N calls of :func:`recolor`, faster.

    Eq. (2) splits G into FE and RD, and only RD sees P_t: the content features c = FE(I_s) are
    computed once, then RD runs on ``batch`` palettes at a time (the §4.4 experiment, Fig. 6 / 7 grids).
    ``match``, ``work_size``, ``net_scale``: as in :func:`recolor` (the photo's palette is extracted once).
    """
    photo = _Photo(image)
    if model is None:
        model = cached_model(None, device)
    with torch.inference_mode():   # no autograd bookkeeping anywhere (the model was loaded outside it)
        shape = _work_shape(photo.size, work_size)
        small = photo.resized(shape)                                         # what the network sees
        src = photo.palette(small) if model.uses_source_palette else None   # = palette_of(image)
        pairs = [target_and_source(small, p, model, match=match, src=src) for p in palettes]   # (P_t, P_s)
        if not pairs:
            raise ValueError("recolor_palettes needs at least one palette")
        lab = photo.lab_rows(0, shape[0]) if shape == photo.size else None   # then converted once, for both
        net = _WorkingNetwork(model, small, net_scale, lab=lab)
        del small
        ts = []
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            P_t = torch.stack([p for p, _ in chunk]).to(net.device)
            P_s = torch.stack([q for _, q in chunk]).to(net.device) if src is not None else None
            ts.append(net.predict(P_t, P_s))
        t, affine = torch.cat(ts), net.affine
        del net, ts                                                          # FE's features: no longer needed
        rows = photo.lab_rows if lab is None else lambda y0, y1: lab[..., y0:y1, :]
        return render_full(t, affine, rows, photo.size)


def _work_shape(size, work_size) -> tuple[int, int]:
    """(h, w): ``size`` scaled so its long side is ``work_size`` (never up; ``None``: unchanged)."""
    H, W = size
    if work_size is None:
        return H, W
    s = min(1.0, int(work_size) / max(H, W))
    return max(1, round(H * s)), max(1, round(W * s))


class _Photo:
    """A photo read once, at full resolution, as compactly as it comes: uint8 ``(H, W, 3)`` where that is
    exact (:func:`~pnlib.photos.load_pixels`), else float32 ``(3, H, W)``. Rows are converted on demand.
    """

    def __init__(self, image):
        self.pixels = load_pixels(image)
        self.uint8 = isinstance(self.pixels, np.ndarray)
        self.size = tuple(self.pixels.shape[:2] if self.uint8 else self.pixels.shape[-2:])

    def rgb_rows(self, y0: int, y1: int) -> torch.Tensor:
        """Rows y0:y1 as float sRGB ``(1, 3, y1 - y0, W)`` in [0, 1] (exactly :func:`load_image`'s)."""
        if self.uint8:
            return torch.from_numpy(self.pixels[y0:y1].copy()).permute(2, 0, 1)[None].float().div_(255.0)
        return self.pixels[None, :, y0:y1]

    def lab_rows(self, y0: int, y1: int) -> torch.Tensor:
        """Rows y0:y1 in raw LAB ``(1, 3, y1 - y0, W)`` (uint8 photos: :func:`~pnlib.color.uint8_to_lab`)."""
        if self.uint8:
            return uint8_to_lab(torch.from_numpy(self.pixels[y0:y1].copy()))[None]
        return rgb_to_lab(self.rgb_rows(y0, y1))

    def palette(self, small: torch.Tensor | None = None) -> torch.Tensor:
        """The photo's palette (:func:`palette_of`), from ``small`` when it has the size it is extracted at."""
        shape = _work_shape(self.size, MAX_SIDE)
        fits = small is not None and tuple(small.shape[-2:]) == shape
        return extract_palette(small if fits else self.resized(shape), max_pixels=PALETTE_PIXELS)

    def resized(self, shape) -> torch.Tensor:
        """The photo at ``shape = (h, w)``, float ``(3, h, w)`` (:func:`downscale`, in row blocks)."""
        return downscale(self.rgb_rows, self.size, shape)


def downscale(rgb_rows, size, shape) -> torch.Tensor:
    """A photo read by rows (``rgb_rows(y0, y1) -> (1, 3, n, W)``) of ``size = (H, W)``, resized to
    ``shape = (h, w)`` (antialiased bilinear, as :func:`torch.nn.functional.interpolate`) -> ``(3, h, w)``.

    Separable: each block of rows is first resized along its width (so only ``(3, H, w)`` is ever held
    at full height), then the result along its height. At ``shape == size`` the photo itself.
    """
    (H, W), (h, w) = size, shape
    if (h, w) == (H, W):
        return rgb_rows(0, H)[0]
    rows = max(1, ROW_BLOCK // W)
    narrow = torch.cat([F.interpolate(rgb_rows(y, min(H, y + rows)), size=(min(H, y + rows) - y, w),
                                      mode="bilinear", antialias=True, align_corners=False)
                        for y in range(0, H, rows)], 2)
    return F.interpolate(narrow, size=(h, w), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp_(0, 1)


#: The palette head's FE and RD run at this fraction of the working size in :func:`recolor` and
#: :class:`PalettePreview`; its weights are formed and smoothed at the working size itself (1: as the
#: evaluation runs it). Measured: benchmarks/RESULTS.md, "Where a student waits".
NET_SCALE = 0.5


class _WorkingNetwork:
    """FE(I_s) once on the working-resolution photo ``small`` ``(3, h, w)``; then :meth:`predict` per palette.

    ``lab``: ``small`` in raw LAB ``(1, 3, h, w)`` when the caller has it. With the palette head (ours) FE
    and RD see the photo at ``net_scale`` of the working size (area average of its LAB), and RD's
    corrections are taken up to the working size, where the weights read the photo's own detail.
    """

    def __init__(self, model: PaletteNet, small: torch.Tensor, net_scale: float | None = None, lab=None):
        net_scale = NET_SCALE if net_scale is None else float(net_scale)
        if not 0 < net_scale <= 1:
            raise ValueError(f"net_scale must be in (0, 1], got {net_scale}")
        self.model, self.device = model, next(model.parameters()).device
        self.affine = getattr(model, "head", "direct") in ("affine", "palette")
        self.size = tuple(small.shape[-2:])
        self.guided = getattr(model, "head", "direct") == "palette" and net_scale < 1
        with torch.inference_mode():
            I_s = normalize_lab(rgb_to_lab(small.to(self.device)[None]) if lab is None else lab.to(self.device))
            if self.guided:   # the palette head: the network on a smaller copy, the weights at this size
                self.I_full = I_s
                I_s = F.interpolate(I_s, size=tuple(max(1, round(n * net_scale)) for n in self.size), mode="area")
            self.net_size = tuple(I_s.shape[-2:])
            self.I_s, _ = pad_to_multiple(I_s.contiguous(memory_format=input_memory_format(model)))
            self.c = model.encoder(self.I_s)                               # c = FE(I_s), once

    def predict(self, P_t: torch.Tensor, P_s: torch.Tensor | None = None) -> torch.Tensor:
        """RD(c, P_t, I_s) at the working size for ``(n, 6, 3)`` palettes -> ``(n, 6, h, w)`` (A, β) with
        the affine and palette heads, ``(n, 2, h, w)`` Îab_t (normalised) with the direct head."""
        n = P_t.shape[0]
        c = [ci.expand(n, -1, -1, -1) for ci in self.c]
        I_s = self.I_s.expand(n, -1, -1, -1)
        with torch.inference_mode():
            if self.guided:
                dec = self.model.decoder
                corrections, _ = dec.corrections(dec.decode(c, P_t, P_s), I_s, P_s)
                return dec.transfer(crop_to(corrections, self.net_size), self.I_full.expand(n, -1, -1, -1),
                                    P_s, P_t)
            if self.affine:
                out = self.model.decoder.head_output(c, P_t, I_s, P_s)
            else:
                out = self.model.forward_features(c, P_t, I_s, P_s)
            return crop_to(out, self.size)


def render_full(t: torch.Tensor, affine: bool, lab_rows, size) -> np.ndarray:
    """The network's output at the working size, upsampled onto the full photo -> uint8 ``(n, H, W, 3)``.

    ``t``: ``(n, 6, h, w)`` per-pixel affine transforms (A, β) of the normalised chroma (``affine``), or
    ``(n, 2, h, w)`` normalised Îab_t; ``lab_rows(y0, y1)``: rows of the full-size source in raw LAB,
    ``(1, 3, y1 - y0, W)``; ``size = (H, W)``. Block by block of rows: upsample t bilinearly
    (align_corners=False, as :func:`torch.nn.functional.interpolate` to ``size``), apply it to the
    source's chroma (or take it as the chroma), put the source's L back and convert to sRGB uint8. So
    no full-size float image is ever held: memory is the uint8 result plus one block. The transform is
    first rewritten in raw LAB units at the working size (it is linear in its coefficients, so this
    commutes with the upsampling), which saves a normalisation per full-size pixel.
    """
    n, _, h, w = t.shape
    H, W = size
    t = _raw_ab_transform(t, affine)
    out = np.empty((n, H, W, 3), np.uint8)
    rows = max(1, ROW_BLOCK // W)
    if h != H:  # rows of t that each output row blends (PyTorch's source index, align_corners=False)
        src = ((torch.arange(H, dtype=torch.float64) + 0.5) * (h / H) - 0.5).clamp_min(0)
        i0 = src.long().clamp_max(h - 1)
        i1 = (i0 + 1).clamp_max(h - 1)
        lam = (src - i0).to(t.dtype).view(-1, 1).to(t.device)
        i0, i1 = i0.to(t.device), i1.to(t.device)
    with torch.inference_mode():
        for y0 in range(0, H, rows):
            y1 = min(H, y0 + rows)
            if h != H:
                lb = lam[y0:y1]
                tb = torch.lerp(t[:, :, i0[y0:y1]], t[:, :, i1[y0:y1]], lb)
            else:
                tb = t[:, :, y0:y1]
            if w != W:
                tb = F.interpolate(tb, size=(y1 - y0, W), mode="bilinear", align_corners=False)
            L, a, b = lab_rows(y0, y1).to(t.device)[0]
            if affine:   # Îab = A · ab + β, per pixel, in raw units
                a2 = tb[:, 0].mul(a).add_(tb[:, 1] * b).add_(tb[:, 4])
                b2 = tb[:, 2].mul(a).add_(tb[:, 3] * b).add_(tb[:, 5])
            else:
                a2, b2 = tb[:, 0], tb[:, 1]
            for k in range(n):   # L: the source's, exactly
                out[k, y0:y1] = lab_to_uint8(torch.stack([L, a2[k], b2[k]])).cpu().numpy()
    return out


def _raw_ab_transform(t: torch.Tensor, affine: bool) -> torch.Tensor:
    """The network's output in raw LAB units: (A, β) on raw ab (affine), or raw Îab_t (direct)."""
    if affine:
        return affine_to_raw(t)
    s, o = ab_scale_offset(t)
    return (t - o.view(1, 2, 1, 1)) / s.view(1, 2, 1, 1)


# --------------------------------------------------------------------------------------------------
# Preview: one photo, many palettes, interactively
# --------------------------------------------------------------------------------------------------

class PalettePreview:
    """Recolor one photo to palette after palette at interactive speed: the maths of the palette sliders.

    Eq. (2), G(I_s, P_t) = RD(FE(I_s), P_t): FE sees only the photo, so c = FE(I_s) is computed once,
    at a preview size (long side ``preview``, never above the photo's own); each :meth:`render` reruns
    only RD there. The predicted Îab_t is upsampled (bilinear) onto the full-resolution luminance I^L_s,
    so the result keeps every detail of the photo (chroma varies slowly, luminance carries the edges).
    With the affine and palette heads it is the per-pixel transform A, β that is upsampled, and it is
    applied to the full-resolution chroma of the source, which keeps its detail too. Pure torch: no widgets.

    ``photo_palette``: the palette head's P_s, ``(6, 3)`` RGB (default: :func:`palette_of` the photo,
    exactly what :func:`recolor` reads; pass it when you already have it); colour i of each rendered P_t
    replaces colour i of it, with no re-matching, so a slider moves the region of its own colour.
    ``photo_palette`` is kept as given, the P_s the model reads.
    """

    def __init__(self, rgb: torch.Tensor, model: PaletteNet, preview: int = 256, photo_palette=None):
        self.model, self.rgb = model, rgb
        H, W = rgb.shape[-2:]
        h, w = _work_shape((H, W), preview)
        dev = next(model.parameters()).device
        with torch.inference_mode():
            self._lab_full = rgb_to_lab(rgb[None].to(dev))              # the full-size photo, raw LAB
            small = downscale(lambda y0, y1: rgb[None, :, y0:y1], (H, W), (h, w))
            self._net = _WorkingNetwork(model, small, lab=self._lab_full if (h, w) == (H, W) else None)
            self.affine, self._P_s, self.photo_palette = self._net.affine, None, None
            if model.uses_source_palette:
                src = palette_of(rgb) if photo_palette is None else photo_palette
                self.photo_palette = torch.as_tensor(src).float()
                self._P_s = palette_lab_norm(self.photo_palette)[None].to(dev)
        self.size, self.preview_size = (H, W), (h, w)

    def render(self, P_t: torch.Tensor) -> np.ndarray:
        """RD(c, P_t, I_s) at the preview size, upsampled onto the full photo -> uint8 ``(H, W, 3)``.

        ``P_t``: ``(6, 3)`` normalised LAB (:func:`pnlib.palette.palette_lab_norm`).
        """
        t = self._net.predict(P_t[None].to(self._net.device), self._P_s)
        return render_full(t, self.affine, lambda y0, y1: self._lab_full[..., y0:y1, :], self.size)[0]
