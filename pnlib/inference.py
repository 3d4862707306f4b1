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
* :func:`recolor` -- image + six colours -> ``uint8 (H, W, 3)`` of the same size;
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
from .color import denormalize_lab, lab_to_rgb, normalize_lab, rgb_to_lab, to_uint8
from .config import SHIPPED, resolve_device
from .photos import load_image
from .model import PaletteNet, apply_affine, crop_to, input_memory_format, pad_to_multiple
from .palette import extract_palette, match_palette, palette_lab_norm, parse_palette

_HOW_TO_MAKE = ("make one with `python -m pnlib train` (runs/quick/) and then "
                "`python -m pnlib export runs/quick/checkpoint.pt pnlib/checkpoints/palettenet.pt`, "
                "or pass a checkpoint path")

_models: dict = {}  # (resolved path, mtime, device) -> model: the shipped model is read once


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------

def load_model(path=None, device="auto") -> PaletteNet:
    """A trained :class:`PaletteNet` G = RD ∘ FE (eq. 2) in eval mode, on ``device`` ("auto": CUDA/MPS/CPU).

    ``path``: a pnlib checkpoint (a training run's ``checkpoint.pt`` or an exported model); ``None``
    reads the shipped :data:`SHIPPED`. The width comes from the checkpoint's config. Raises
    ``FileNotFoundError`` for a missing file (saying how to make the shipped one) and
    :class:`~pnlib.checkpoint.CheckpointMismatch` (a ``ValueError``) for a file that is not a pnlib checkpoint.
    The model is passed through :func:`optimize_for_inference` (same outputs and weights, faster).
    """
    if path is None:
        if not SHIPPED.is_file():
            raise FileNotFoundError(f"the shipped checkpoint {SHIPPED} is missing; {_HOW_TO_MAKE}")
        path = SHIPPED
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
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


def cached_model(path=None, device="auto") -> PaletteNet:
    """load_model, read once per (file, modification time, device)."""
    p = Path(path).expanduser().resolve() if path is not None else SHIPPED
    dev = resolve_device(device)
    key = (str(p), p.stat().st_mtime_ns if p.is_file() else None, str(dev))
    if key not in _models:
        _models[key] = load_model(path, dev)
    return _models[key]


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------

def palette_of(image) -> torch.Tensor:
    """The ``(6, 3)`` RGB palette of a photo (k-means in LAB, :func:`pnlib.palette.extract_palette`)."""
    return extract_palette(load_image(image))


# --------------------------------------------------------------------------------------------------
# Recolor
# --------------------------------------------------------------------------------------------------

def recolor(image, palette, model: PaletteNet | None = None, device="auto", match: bool = True) -> np.ndarray:
    """Recolor ``image`` to the six colours of ``palette``; returns ``uint8 (H, W, 3)``, the same size.

    ``image``: anything :func:`load_image` reads; ``palette``: anything
    :func:`~pnlib.palette.parse_palette` reads (``"#e63946,#f1faee,..."``, six CSS names, a (6, 3) array).
    ``model``: a PaletteNet (``None``: the shipped one, loaded once on ``device``). Any H×W works
    (:meth:`PaletteNet.recolor_any_size` pads to multiples of 16 and crops back). The output is
    ``lab_to_rgb([I^L_s, Îab_t])``: the source's L with the predicted chroma (§2), clipped to sRGB.

    A model with the palette head (ours, the shipped one) also reads the photo's own palette P_s,
    extracted here (:func:`source_palette`): the user gives only P_t. A palette comes in any order, so
    by default (``match=True``) its colours are first paired with P_s's by the least total ΔE00
    (:func:`~pnlib.palette.match_palette`): each colour of the photo turns into the closest target
    colour still free. ``match=False`` keeps the order: colour i of ``palette`` replaces colour i of
    :func:`palette_of` (the photo's palette, largest share first), as the palette sliders do. The
    paper's model (direct or affine head) reads the palette as given; ``match`` does not apply to it.
    """
    rgb = load_image(image)
    if model is None:
        model = cached_model(None, device)
    P_t, P_s = target_and_source(rgb, palette, model, match)
    dev = next(model.parameters()).device
    with torch.inference_mode():
        lab = rgb_to_lab(rgb.to(dev)[None])               # I_s in raw LAB, (1, 3, H, W)
        I_s = normalize_lab(lab).contiguous(memory_format=input_memory_format(model))
        out = model.recolor_any_size(I_s, P_t[None].to(dev),  # [I^L_s, Îab_t], normalised
                                     None if P_s is None else P_s[None].to(dev))
        return compose_result(lab[:, :1], out[:, 1:])[0]


def source_palette(rgb: torch.Tensor) -> torch.Tensor:
    """P_s, the ``(6, 3)`` RGB palette of a ``(3, H, W)`` photo that the palette head reads (= palette_of)."""
    return extract_palette(rgb)


def target_and_source(rgb: torch.Tensor, palette, model: PaletteNet, match: bool = True, src=None):
    """(P_t, P_s), ``(6, 3)`` each in normalised LAB, for ``model`` on photo ``rgb`` (P_s None if unread).

    P_s is the photo's palette (``src``, RGB, or :func:`source_palette` of ``rgb``); with ``match`` the
    target's colours are reordered to pair with P_s's by least total ΔE00 (:func:`~pnlib.palette.match_palette`).
    """
    target = parse_palette(palette.detach().cpu() if torch.is_tensor(palette) else palette)
    if not model.uses_source_palette:
        return palette_lab_norm(target), None
    src = source_palette(rgb) if src is None else src
    if match:
        target = match_palette(src, target)
    return palette_lab_norm(target), palette_lab_norm(src)


def recolor_palettes(image, palettes, model: PaletteNet | None = None, device="auto", batch: int = 8,
                     match: bool = True) -> np.ndarray:
    """One image, N palettes -> ``uint8 (N, H, W, 3)``: the same as N calls of :func:`recolor`, faster.

    Eq. (2) splits G into FE and RD, and only RD sees P_t: the content features c = FE(I_s) are
    computed once, then RD runs on ``batch`` palettes at a time (the §4.4 experiment, Fig. 6 / 7 grids).
    ``match``: as in :func:`recolor` (the photo's palette is extracted once).
    """
    rgb = load_image(image)
    if model is None:
        model = cached_model(None, device)
    src = source_palette(rgb) if model.uses_source_palette else None
    pairs = [target_and_source(rgb, p, model, match, src) for p in palettes]   # (P_t, P_s) of each
    if not pairs:
        raise ValueError("recolor_palettes needs at least one palette")
    dev = next(model.parameters()).device
    outs = []
    with torch.inference_mode():
        lab = rgb_to_lab(rgb.to(dev)[None])
        I_s, size = pad_to_multiple(normalize_lab(lab).contiguous(memory_format=input_memory_format(model)))
        c = model.encoder(I_s)                              # FE(I_s): once
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            n = len(chunk)
            P_t = torch.stack([p for p, _ in chunk]).to(dev)
            P_s = torch.stack([q for _, q in chunk]).to(dev) if src is not None else None
            ab_norm = model.forward_features([ci.expand(n, -1, -1, -1) for ci in c], P_t,
                                             I_s.expand(n, -1, -1, -1), P_s)
            outs.append(compose_result(lab[:, :1].expand(n, -1, -1, -1), crop_to(ab_norm, size)))
    return np.concatenate(outs)


def compose_result(L_s: torch.Tensor, ab_norm: torch.Tensor) -> np.ndarray:
    """[I^L_s, Îab_t] (raw L, normalised ab) -> display sRGB, uint8 (N, H, W, 3)."""
    ab = denormalize_lab(torch.cat([torch.zeros_like(ab_norm[:, :1]), ab_norm], 1))[:, 1:]
    rgb = lab_to_rgb(torch.cat([L_s, ab], 1), clip=True)   # L: the source's, exactly
    return to_uint8(rgb).permute(0, 2, 3, 1).cpu().numpy()


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

    ``photo_palette``: the palette head's P_s, ``(6, 3)`` RGB, in the order of the colours a user
    edits (default: :func:`source_palette` of the photo); colour i of each rendered P_t replaces colour i
    of it, with no re-matching, so a slider moves the region of its own colour.
    """

    def __init__(self, rgb: torch.Tensor, model: PaletteNet, preview: int = 256, photo_palette=None):
        self.model, self.rgb = model, rgb
        dev = next(model.parameters()).device
        H, W = rgb.shape[-2:]
        s = min(1.0, int(preview) / max(H, W))
        h, w = max(1, round(H * s)), max(1, round(W * s))
        small = rgb[None]
        if (h, w) != (H, W):
            small = F.interpolate(small, size=(h, w), mode="bilinear", antialias=True,
                                  align_corners=False).clamp_(0, 1)
        with torch.inference_mode():
            self._I_preview, _ = pad_to_multiple(normalize_lab(rgb_to_lab(small.to(dev))))
            self._c = model.encoder(self._I_preview)              # c = FE(I_s), once
            lab_full = rgb_to_lab(rgb[None].to(dev))
            self._L_full = lab_full[:, :1]                          # raw L of the full-size photo
            self.affine = getattr(model, "head", "direct") in ("affine", "palette")
            self._ab_full = normalize_lab(lab_full)[:, 1:] if self.affine else None  # its chroma
            self._P_s = None
            if model.uses_source_palette:
                src = source_palette(rgb) if photo_palette is None else photo_palette
                self._P_s = palette_lab_norm(torch.as_tensor(src).float())[None].to(dev)
        self.size, self.preview_size = (H, W), (h, w)

    def render(self, P_t: torch.Tensor) -> np.ndarray:
        """RD(c, P_t, I_s) at the preview size, upsampled onto the full photo -> uint8 ``(H, W, 3)``.

        ``P_t``: ``(6, 3)`` normalised LAB (:func:`pnlib.palette.palette_lab_norm`).
        """
        dev = self._L_full.device
        with torch.inference_mode():
            if self.affine:
                out = self.model.decoder.head_output(self._c, P_t[None].to(dev), self._I_preview, self._P_s)
            else:
                out = self.model.forward_features(self._c, P_t[None].to(dev), self._I_preview, self._P_s)
            out = crop_to(out, self.preview_size)
            if self.preview_size != self.size:
                out = F.interpolate(out, size=self.size, mode="bilinear", align_corners=False)
            ab = apply_affine(out, self._ab_full) if self.affine else out
            return compose_result(self._L_full, ab)[0]
