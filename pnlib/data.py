"""Training data for PaletteNet: photos -> D_orig -> training tuples (§3, §3.3, §4.1).

The paper starts from N image-palette pairs, D_orig = {(I_j, P_j) | j = 1..N} (§3). Each pair is
colour-augmented N_a = 18 times by the luminance-keeping hue shift of eq. (10), 20° apart (§4.1):

    I_(j,n) = hue_shift(I_j, 20 n),   P_(j,n) = hue_shift(P_j, 20 n),   n = 0..17.

A training tuple (§3.3) takes two of these copies of the same pair, a source (I_s, P_s) and a target
(I_t, P_t), and keeps (I_s, P_t, I_t): the network sees I_s and P_t and must produce I_t. P_s is never
used. Source and target may be the same copy (s = t): then PaletteNet reconstructs its input, like an
auto-encoder. N_a x N_a x N tuples are possible. For the adversarial phase (§3.2) the tuple grows to
(I_s, P_t, I_t, I_o, P_o), where (I_o, P_o) is a further *unshifted* pair drawn from D_orig. Images are
flipped horizontally with probability 0.5 (§3.3).

This module builds that, offline and from any photos:

* :func:`pnlib.photos.bundled_photos`: eight photos that ship inside scikit-image, scikit-learn and
  matplotlib; :func:`pnlib.photos.folder_photos`: a folder of your own photos, with a palettes file.
* :func:`load_pairs`: either source -> D_orig as a ``list[Pair]``; a palette missing from the palettes
  file is extracted and cached on disk (:func:`pnlib.palette.cached_palette`).
* :func:`split_pairs`: an image-level train / validation split, made *before* any augmentation, so no
  crop or hue copy of a validation image ever reaches training.
* :class:`PairSampler`: draws batches of (I_s, P_t, I_t, I_o, P_o) on the training device, with random
  crops/rescales and flips on top of the paper's recipe (we have 8 photos, the paper 1,561).
* :func:`validation_set`: the fixed validation tuples, each validation image x the 18 target shifts
  (the paper's 50 x 18 = 900 construction, §4.1).

All tensors the network sees are normalised LAB in [-1, 1] (§4.2, :func:`pnlib.color.normalize_lab`);
images ``(B, 3, H, W)``, palettes ``(B, 6, 3)``.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .color import hue_shift, normalize_lab, rgb_to_lab
from .palette import cached_palette, format_palette, palette_lab_norm
from .photos import MAX_SIDE, _downsize, bundled_photos, folder_photos, warn_skipped

#: The N_a = 18 hue shifts of §4.1, in degrees: 0, 20, ..., 340.
SHIFTS = tuple(range(0, 360, 20))


@dataclass
class Pair:
    """One image-palette pair (I_j, P_j) of D_orig (§3).

    ``name``: a stable id ("bundled/astronaut", or the path relative to the photo folder);
    ``rgb``: ``(3, H, W)`` float32 sRGB in [0, 1] on the CPU; ``palette``: ``(6, 3)`` float32 sRGB.
    """

    name: str
    rgb: torch.Tensor
    palette: torch.Tensor

    def __repr__(self) -> str:
        return f"Pair({self.name!r}, rgb={tuple(self.rgb.shape)}, palette={format_palette(self.palette)})"


# --------------------------------------------------------------------------------------------------
# D_orig: pairs, the split
# --------------------------------------------------------------------------------------------------

def load_pairs(source="bundled", cache_dir=None, palettes=None, max_side: int | None = MAX_SIDE,
               skipped: list | None = None) -> list[Pair]:
    """D_orig = [(I_j, P_j)] from ``source``: ``"bundled"`` (the eight bundled photos) or a folder path.

    Folder photos are read by :func:`pnlib.photos.folder_photos` (a folder literally named "bundled" needs
    ``Path("bundled")``). A palette comes from the palettes file when it has a row for the photo,
    else it is extracted (:func:`~pnlib.palette.cached_palette`, cached in ``cache_dir``). Images with a long side
    over ``max_side`` are downsized once here. Bundled names are ``"bundled/<name>"``; folder names are
    paths relative to the folder. ``skipped``: as in :func:`~pnlib.photos.folder_photos` (a list for the
    reasons files were skipped; then no warning, and an empty folder gives no pairs instead of an error).
    """
    if isinstance(source, str) and source == "bundled":
        if palettes is not None:
            raise ValueError("a palettes file goes with a photo folder, not with source='bundled'")
        items = [(f"bundled/{n}", a.astype(np.float32) / 255.0, None) for n, a in bundled_photos()]
    else:
        items = folder_photos(source, palettes=palettes, max_side=max_side, skipped=skipped)
    pairs = []
    for i, (name, a, pal) in enumerate(items):
        items[i] = None  # free each (H, W, 3) array once its (3, H, W) copy exists
        rgb = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1).contiguous()
        del a
        if max_side is not None and max(rgb.shape[-2:]) > max_side:
            rgb = _downsize(rgb, max_side)
        if pal is None:
            pal = cached_palette(rgb, cache_dir, name)
        pairs.append(Pair(name, rgb, pal.float()))
    return pairs


def split_pairs(pairs: list[Pair], n_val: int | None = None, val_fraction: float = 0.25, seed: int = 0
                ) -> tuple[list[Pair], list[Pair]]:
    """Image-level split of D_orig -> ``(train, val)``, each sorted by name.

    Split *before* augmentation (§4.1 splits the 1,611 pairs 1,561 / 50): validation images never reach
    training, in any crop or hue copy. Deterministic and independent of the input order: the names are
    ranked by SHA-256 of ``f"{seed}:{name}"`` and the first ``n_val`` are validation (a hash, not a
    random generator, so the split cannot change with a numpy or torch version). ``n_val`` defaults to
    ``round(val_fraction * N)``, at least 1 when N >= 2 (0 when N == 1). Names must be unique.

    The default split of the eight bundled photos (seed 0; pinned by a test):

    * train (6): bundled/chelsea, bundled/china, bundled/coffee, bundled/flower, bundled/grace_hopper,
      bundled/rocket
    * val (2): bundled/astronaut, bundled/stereo_motorcycle
    """
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"pair names must be unique to split by image; repeated: {dup}")
    n = len(pairs)
    if n_val is None:
        n_val = 0 if n < 2 else max(1, round(val_fraction * n))
    if not 0 <= n_val < max(n, 1):
        raise ValueError(f"n_val={n_val} must leave at least one training image out of {n}")
    rank = sorted(names, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    val_names = set(rank[:n_val])
    by_name = sorted(pairs, key=lambda p: p.name)
    return [p for p in by_name if p.name not in val_names], [p for p in by_name if p.name in val_names]


def data_sources(data) -> list[str]:
    """``"bundled"``, a folder, or several joined by commas (or a list of them) -> the list of sources.

    Raises ``FileNotFoundError`` naming a source that is neither ``bundled`` nor an existing folder.
    """
    items = data.split(",") if isinstance(data, str) else [str(d) for d in data]
    sources = [d.strip() for d in items if d.strip()]
    if not sources:
        raise ValueError("no photo source given: use 'bundled', a folder, or several joined by commas")
    for src in sources:
        if src != "bundled" and not Path(src).expanduser().is_dir():
            raise FileNotFoundError(f"no photo folder at {src} (give 'bundled', a folder of photos, "
                                    "or several joined by commas)")
    return sources


def load_split(data="bundled", seed: int = 0, cache_dir=None) -> tuple[list[Pair], list[Pair]]:
    """(train, val) pairs of one or more photo sources (:func:`data_sources`), split per source.

    Each source is read by :func:`load_pairs` and split on its own by :func:`split_pairs`, exactly as
    when it is used alone (so adding a source never moves a photo of another between train and
    validation); the lists are then joined.
    With more than one source, a folder's photo names get the folder's name in front
    (``"lxqt/forest.jpg"``) so that names stay unique; the bundled photos are ``"bundled/<name>"``.
    """
    sources = data_sources(data)
    train, val, read = [], [], []
    for src in sources:
        skipped = []
        pairs = load_pairs(src, cache_dir=cache_dir, skipped=skipped)
        read.append((src, len(pairs), skipped))
        t, v = split_pairs(pairs, seed=seed)  # the source's own split
        if len(sources) > 1 and src != "bundled":
            prefix = Path(src).expanduser().resolve().name
            t, v = ([Pair(f"{prefix}/{p.name}", p.rgb, p.palette) for p in ps] for ps in (t, v))
        train += t
        val += v
    if not train or not val or any(n == 0 for _, n, _ in read):
        raise ValueError(too_few_photos(read, len(train), len(val)))
    for src, _, skipped in read:
        if skipped:
            warn_skipped(src, skipped)
    names = [p.name for p in train + val]
    if len(set(names)) != len(names):
        raise ValueError("two photo sources share a folder name; give folders with different names")
    return train, val


def too_few_photos(read: list, n_train: int, n_val: int) -> str:
    """The one message for photo sources that cannot be split: ``read`` holds, per source, ``(source,
    photos read, reasons files were skipped)``; ``n_train``, ``n_val``: what the split gave."""
    def photos(n):
        return f"{n} photo" + ("" if n == 1 else "s")

    parts = []
    for src, n, skipped in read:
        part = f"{photos(n)} read from {src}"
        if skipped:
            part += f" ({len(skipped)} skipped: " + "; ".join(skipped) + ")"
        parts.append(part)
    return (f"too few readable photos: {', '.join(parts)}. Training needs at least 2 photos in a source: "
            f"1 for training and 1 held out for validation (a quarter of each source is held out); "
            f"this gives {photos(n_train)} for training and {photos(n_val)} held out")


def nested_subset(pairs: list[Pair], n: int) -> list[Pair]:
    """The first ``n`` of ``pairs`` in a fixed order (SHA-256 of ``"subset:" + name``), sorted by name;
    ``n = 0``: all of them. Nested: the photos of a smaller ``n`` are among those of a larger one, so a
    data-scaling curve (:mod:`pnlib.scaling`) only ever adds photos. Raises ``ValueError`` for more
    photos than there are."""
    if not n:
        return list(pairs)
    if not 0 < n <= len(pairs):
        raise ValueError(f"train_photos={n}: the training split has {len(pairs)} photos")
    rank = sorted(pairs, key=lambda p: hashlib.sha256(f"subset:{p.name}".encode()).hexdigest())
    return sorted(rank[:n], key=lambda p: p.name)


# --------------------------------------------------------------------------------------------------
# Tuples (§3.3)
# --------------------------------------------------------------------------------------------------

def _fit(rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop ``(3, h, w)`` to the aspect of ``size = (H, W)`` and resize to it (antialiased)."""
    H, W = size
    h, w = rgb.shape[-2:]
    if w * H > h * W:  # too wide: crop the width
        cw = max(1, round(h * W / H))
        x0 = (w - cw) // 2
        rgb = rgb[..., :, x0:x0 + cw]
    else:
        ch = max(1, round(w * H / W))
        y0 = (h - ch) // 2
        rgb = rgb[..., y0:y0 + ch, :]
    return F.interpolate(rgb[None].float(), size=(H, W), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp_(0, 1)


def _lab_norm(lab: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Raw LAB -> normalised LAB, clamped to [-1, 1] (hue-shifted colours can fall slightly outside)."""
    return normalize_lab(lab, dim).clamp_(-1.0, 1.0)


def _check_size(size) -> tuple[int, int]:
    try:
        H, W = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return H, W


class PairSampler:
    """Random training tuples (I_s, P_t, I_t, I_o, P_o) of §3.3, drawn as batched tensor ops on ``device``.

    At construction every photo is centre-cropped to the aspect W/H and resized once to a canvas
    ``canvas`` times the output size (default 1.25 x), and all canvases are stacked on ``device``
    (as uint8: 4x less memory) with the palettes. Each :meth:`sample` then draws, per row b:

    * j uniform over the pairs; one crop of side ``u`` x the canvas side, u uniform in ``scale``, at a
      uniform random position, resized to ``size``; a horizontal flip with p = 0.5. Crop, rescale and
      flip are one affine map, applied to the whole batch by a single ``grid_sample`` (bilinear);
    * the source and target shifts s, t, independently uniform over the 18 angles 0, 20, ..., 340
      (s = t allowed: reconstruction). I_s = hue_shift(crop, s) and I_t = hue_shift(crop, t) (eq. 10)
      are both shifts of the *same* crop, so they share crop and flip; P_t = hue_shift(P_j, t);
    * the phase-2 pair (I_o, P_o): another index o with its own crop and flip, and no hue shift. With
      ``jitter``, I_o gets its own random saturation and gamma like I_s (and P_o like P_t, which for
      the palette head is the jittered crop's palette): otherwise D could tell a real pair (I_o, P_o)
      from a generated one by the jitter alone (ours: the paper has no jitter).

    Returns a dict on ``device``: ``I_s, I_t, I_o`` (B, 3, H, W) and ``P_t, P_o`` (B, 6, 3), normalised
    LAB clamped to [-1, 1], float32; provenance ``j, o`` (B,) long (``self.names[j]`` is the pair's
    name), ``shift_s, shift_t`` (B,) float degrees, ``flip, flip_o`` (B,) bool, ``scale`` (B,) the crop
    scale of I_s; and the RGB crops ``rgb, rgb_o`` (B, 3, H, W). Random numbers come from a CPU
    ``torch.Generator`` seeded by ``seed``, so a seed gives the same batches on every device.
    Iterating the sampler yields batches forever. ``extra`` (ours, off: the paper's tuples): a callable
    ``extra(batch, rgb, palettes, lab_s, generator)`` that changes each batch in place once the paper's
    tuple is drawn, given the crops, their palettes (jittered with them) and I_s in raw LAB
    (:class:`pnlib.regions.RegionTuples`).
    """

    def __init__(self, pairs: list[Pair], size=(96, 144), batch_size: int = 16, device="cpu",
                 seed: int = 0, scale=(0.5, 1.0), canvas: float = 1.25, jitter: float = 0.0,
                 source_palette: bool = False, extra=None):
        if not pairs:
            raise ValueError("PairSampler needs at least one pair")
        self.size = _check_size(size)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        lo, hi = (float(s) for s in scale)
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1 (a share of the canvas side), got {scale}")
        if canvas < 1:
            raise ValueError(f"canvas must be >= 1 (times the output size), got {canvas}")
        self.batch_size, self.scale, self.seed, self.jitter = int(batch_size), (lo, hi), seed, float(jitter)
        self.source_palette = bool(source_palette)
        self.extra = extra
        self.device = torch.device(device)
        H, W = self.size
        self.canvas_size = (math.ceil(canvas * H), math.ceil(canvas * W))
        self.names = [p.name for p in pairs]
        canv = torch.stack([(_fit(p.rgb, self.canvas_size) * 255).round_().to(torch.uint8) for p in pairs])
        self.canvas = canv.to(self.device)
        self.palettes = torch.stack([p.palette.float() for p in pairs]).to(self.device)
        self._shifts = torch.tensor(SHIFTS, dtype=torch.float32)
        self.generator = torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return (f"PairSampler({len(self.names)} pairs, size={self.size}, batch_size={self.batch_size}, "
                f"canvas={self.canvas_size}, scale={self.scale}, device={self.device})")

    def state_dict(self) -> dict:
        """The random state, for resuming a run (:meth:`load_state_dict`)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def __iter__(self):
        while True:
            yield self.sample()

    def _draw(self, n: int):
        g, (lo, hi) = self.generator, self.scale
        idx = torch.randint(len(self.names), (n,), generator=g)
        flip = torch.rand(n, generator=g) < 0.5
        u = lo + (hi - lo) * torch.rand(n, generator=g)
        pos = torch.rand(n, 2, generator=g) * 2 - 1
        return idx, flip, u, pos

    def _crops(self, idx, flip, u, pos) -> torch.Tensor:
        """One batched affine resample: crop side ``u`` of the canvas at ``pos``, mirrored where ``flip``."""
        n = len(idx)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = torch.where(flip, -u, u)  # x_in = ±u * x_out + tx: the sign is the flip
        theta[:, 1, 1] = u
        theta[:, :, 2] = (1 - u)[:, None] * pos  # the crop stays inside the canvas
        imgs = self.canvas[idx.to(self.device)].float().div_(255.0)
        grid = F.affine_grid(theta.to(self.device), [n, 3, *self.size], align_corners=False)
        return F.grid_sample(imgs, grid, mode="bilinear", padding_mode="border",
                             align_corners=False).clamp_(0, 1)

    def _jitter_draw(self, n: int):
        """Random saturation and gamma factors for ``n`` crops (CPU generator)."""
        g, a = self.generator, self.jitter
        return 1 + a * (2 * torch.rand(n, generator=g) - 1), torch.exp(a * (2 * torch.rand(n, generator=g) - 1))

    @staticmethod
    def _jitter_apply(x: torch.Tensor, factors, dim: int) -> torch.Tensor:
        sat, gamma = (f.to(x.device) for f in factors)
        shape = (-1,) + (1,) * (x.ndim - 1)
        grey = x.mean(dim, keepdim=True)
        return (grey + sat.view(shape) * (x - grey)).clamp_(0, 1).pow_(gamma.view(shape))

    def _jitter(self, rgb: torch.Tensor, palettes: torch.Tensor | None = None):
        """Random saturation and gamma per crop: new colour statistics from few photos (not in the paper).

        With eight photos instead of the paper's 1,611, the network would otherwise memorise each
        photo's saturation and tone. The jittered crop *is* I_j of the tuple: I_s and I_t are still two
        hue shifts of it, with equal L. ``palettes`` (B, 6, 3), when given, get the same change (the
        palette head reads P_s, which must be the palette of the crop it sees); returns (rgb, palettes).
        """
        factors = self._jitter_draw(len(rgb))
        return (self._jitter_apply(rgb, factors, 1),
                self._jitter_apply(palettes, factors, -1) if palettes is not None else None)

    def sample(self, with_o: bool = True) -> dict:
        """One batch; ``with_o=False`` skips computing I_o / P_o (phase 1) but draws the same numbers."""
        B, g = self.batch_size, self.generator
        j, flip, u, pos = self._draw(B)
        o, flip_o, u_o, pos_o = self._draw(B)
        s = self._shifts[torch.randint(len(SHIFTS), (B,), generator=g)]
        t = self._shifts[torch.randint(len(SHIFTS), (B,), generator=g)]
        dev = self.device
        if with_o:
            crops = self._crops(torch.cat([j, o]), torch.cat([flip, flip_o]), torch.cat([u, u_o]),
                                torch.cat([pos, pos_o]))
            rgb, rgb_o = crops[:B], crops[B:]
        else:
            rgb, rgb_o = self._crops(j, flip, u, pos), None
        jd = j.to(dev)
        pal = self.palettes[jd]
        pal_crop = pal  # the palette of the crop as the network sees it (jittered with it), for ``extra``
        if self.jitter:
            rgb, pal_j = self._jitter(rgb, pal if self.source_palette or self.extra else None)
            pal_crop = pal_j if pal_j is not None else pal
            pal = pal_j if self.source_palette else pal
            jitter_o = self._jitter_draw(B)  # drawn in phase 1 too: both phases draw the same numbers
        st = torch.cat([s, t]).to(dev)
        lab = hue_shift(torch.cat([rgb, rgb]), st)  # I_s and I_t: two shifts of the same crop, one call
        out = {
            "I_s": _lab_norm(lab[:B]), "I_t": _lab_norm(lab[B:]),
            "P_t": palette_lab_norm(pal, st[B:]),
            "j": jd, "o": o.to(dev), "shift_s": s.to(dev), "shift_t": t.to(dev),
            "flip": flip.to(dev), "flip_o": flip_o.to(dev), "scale": u.to(dev), "rgb": rgb,
        }
        if self.source_palette:  # P_s = hue_shift(P_j, s): the source's palette, entry by entry with P_t
            out["P_s"] = palette_lab_norm(pal, st[:B])
        if self.extra:  # ours (pnlib.regions): drawn last, so the paper's tuples keep their stream of numbers
            self.extra(out, rgb, pal_crop, lab[:B], g)
        if with_o:
            P_o = self.palettes[o.to(dev)]
            if self.jitter:  # I_o jittered like I_s (and P_o like P_t where P_t is): D cannot tell by jitter
                rgb_o = self._jitter_apply(rgb_o, jitter_o, 1)
                P_o = self._jitter_apply(P_o, jitter_o, -1) if self.source_palette else P_o
            out["I_o"] = _lab_norm(rgb_to_lab(rgb_o))
            out["P_o"] = palette_lab_norm(P_o).clamp_(-1.0, 1.0)
            out["rgb_o"] = rgb_o
        return out


def validation_set(pairs: list[Pair], size=(96, 144), device="cpu") -> dict:
    """The fixed validation tuples: every validation image x the 18 target shifts (§4.1: 50 x 18 = 900).

    Each image is centre-cropped to the aspect of ``size`` and resized to it once (no random crop, no
    flip). The source is the image itself (source shift 0: I_s = hue_shift(I_j, 0)); the targets are
    t = 0, 20, ..., 340: I_t = hue_shift(I_j, t), P_t = hue_shift(P_j, t). Row ``18 v + k`` is image v
    with shift ``SHIFTS[k]``. Returns normalised LAB ``I_s, I_t`` (V*18, 3, H, W), ``P_t`` (V*18, 6, 3),
    ``P_s`` (V*18, 6, 3) the pair's own palette P_j (entry by entry with P_t; read by the palette head),
    ``j`` (V*18,) long indexing ``names`` (the V pair names), ``shift_t`` (V*18,) degrees, and the
    resized RGB images ``rgb`` (V, 3, H, W). Deterministic.
    """
    size = _check_size(size)
    if not pairs:
        raise ValueError("validation_set needs at least one pair")
    device = torch.device(device)
    shifts = torch.tensor(SHIFTS, dtype=torch.float32, device=device)
    n = len(SHIFTS)
    rgb = torch.stack([_fit(p.rgb, size) for p in pairs]).to(device)
    pal = torch.stack([p.palette.float() for p in pairs]).to(device)
    I_s, I_t, P_t, P_s = [], [], [], []
    for v in range(len(pairs)):  # one image at a time: 18 copies, not V * 18, in memory at once
        I_s.append(_lab_norm(hue_shift(rgb[v:v + 1], 0.0)).expand(n, -1, -1, -1))
        P_s.append(palette_lab_norm(pal[v:v + 1]).clamp_(-1.0, 1.0).expand(n, -1, -1))
        I_t.append(_lab_norm(hue_shift(rgb[v:v + 1].expand(n, -1, -1, -1), shifts)))
        P_t.append(palette_lab_norm(pal[v:v + 1].expand(n, -1, -1), shifts))
    return {
        "I_s": torch.cat(I_s), "I_t": torch.cat(I_t), "P_t": torch.cat(P_t), "P_s": torch.cat(P_s),
        "j": torch.arange(len(pairs), device=device).repeat_interleave(n),
        "shift_t": shifts.repeat(len(pairs)), "names": [p.name for p in pairs], "rgb": rgb,
    }
