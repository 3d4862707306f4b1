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
* :func:`cli_recolor` -- ``python -m pnlib recolor``; :func:`bench_recolor` -- the latency benchmark.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .color import denormalize_lab, lab_to_rgb, normalize_lab, rgb_to_lab
from .data import _pil_to_float, read_image, to_rgb3
from .model import HEADS, PaletteNet, crop_to, pad_to_multiple
from .palette import extract_palette, format_palette, match_palette, parse_palette
from .train import LEGACY, CheckpointMismatch, read_checkpoint, resolve_device

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The checkpoint that ships with the repository (written by ``python -m pnlib export``).
SHIPPED = REPO_ROOT / "pnlib" / "checkpoints" / "palettenet.pt"

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
    :class:`~pnlib.train.CheckpointMismatch` (a ``ValueError``) for a file that is not a pnlib checkpoint.
    The model is passed through :func:`optimize_for_inference` (same outputs and weights, faster).
    """
    if path is None:
        if not SHIPPED.is_file():
            raise FileNotFoundError(f"the shipped checkpoint {SHIPPED} is missing; {_HOW_TO_MAKE}")
        path = SHIPPED
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = read_checkpoint(path)
    cfg = state.get("config")
    if not isinstance(cfg, dict) or "width" not in cfg or not isinstance(state.get("G"), dict):
        raise CheckpointMismatch(f"{path} is not a pnlib model checkpoint (no config width / G weights)")
    head = cfg.get("head", LEGACY["head"])  # checkpoints from before the affine head have the paper's
    if head not in HEADS:
        raise CheckpointMismatch(f"{path}: unknown head {head!r} (this pnlib knows {', '.join(HEADS)})")
    G = PaletteNet(int(cfg["width"]), head)
    # torch.compile'd modules save their weights under "_orig_mod."; a plain model does not.
    weights = {k.replace("_orig_mod.", ""): v for k, v in state["G"].items()}
    try:
        G.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointMismatch(f"{path}: the weights do not fit PaletteNet({cfg['width']}, {head!r}): {e}") from None
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

    Measured on a 2-core CPU (see :func:`bench_recolor`): InstanceNorm through ``group_norm`` (same
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

def load_image(x) -> torch.Tensor:
    """An image -> float32 ``(3, H, W)`` sRGB in [0, 1] on the CPU.

    ``x`` may be a path (str / Path, read by :func:`pnlib.data.read_image`: EXIF orientation applied,
    grayscale -> three channels, alpha composited over white); a PIL image (the same rules); a numpy
    array ``(H, W)``, ``(H, W, 1|2|3|4)`` of uint8 (0-255), uint16 (0-65535) or floats in [0, 1] (2 and
    4 channels carry alpha: composited over white, as in :mod:`pnlib.data`); or a tensor ``(3, H, W)``
    (floats in [0, 1] or uint8). Raises ``FileNotFoundError`` naming a missing file and ``ValueError``
    naming an unreadable one or describing a bad array.
    """
    from PIL import Image

    if isinstance(x, (str, Path)):
        p = Path(x).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"image not found: {p}")
        try:
            a = read_image(p)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable"
            raise ValueError(f"cannot read image {p}: unreadable or not an image "
                             f"({type(e).__name__}: {e})") from None
        return _hwc_to_chw(a)
    if isinstance(x, Image.Image):
        from PIL import ImageOps

        try:
            x = ImageOps.exif_transpose(x)  # as read_image does for a file
        except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as they are
            pass
        return _hwc_to_chw(_pil_to_float(x))
    if torch.is_tensor(x):
        return _tensor_image(x)
    if isinstance(x, np.ndarray):
        return _hwc_to_chw(_array_image(x))
    raise ValueError(f"cannot read an image from {type(x).__name__}: give a path, a PIL image, "
                     "a numpy array (H, W[, C]) or a tensor (3, H, W)")


def _hwc_to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1).contiguous()


def _array_image(a: np.ndarray) -> np.ndarray:
    """A numpy image -> float32 (H, W, 3); integer arrays go through Pillow and pnlib.data's rules."""
    from PIL import Image

    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (2, 3, 4)):
        raise ValueError(f"an image array must be (H, W) or (H, W, C) with C in 1-4, got shape {a.shape}")
    if min(a.shape[:2]) < 1:
        raise ValueError(f"an image array must not be empty, got shape {a.shape}")
    if a.dtype == np.uint8 or (a.dtype == np.uint16 and a.ndim == 2):
        # Pillow modes L / LA / RGB / RGBA / I;16: exactly what a file of the same pixels would give.
        return _pil_to_float(Image.fromarray(np.ascontiguousarray(a)))
    if a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif a.dtype.kind != "f":
        raise ValueError(f"an image array must be uint8, uint16 or float in [0, 1], got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError("the image array holds NaN or infinite values")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"a float image must lie in [0, 1], got values in [{a.min():.3g}, {a.max():.3g}] "
                         "(divide 0-255 data by 255, or pass uint8)")
    return to_rgb3(np.clip(a, 0.0, 1.0))  # pnlib.data's rule for float data too


def _tensor_image(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"an image tensor must be (3, H, W) RGB, got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    if not t.is_floating_point():
        raise ValueError(f"an image tensor must be float in [0, 1] or uint8, got {t.dtype}")
    t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError("the image tensor holds NaN or infinite values")
    if t.min() < -1e-6 or t.max() > 1 + 1e-6:
        raise ValueError(f"a float image must lie in [0, 1], got values in [{float(t.min()):.3g}, "
                         f"{float(t.max()):.3g}]")
    return t.clamp(0.0, 1.0).contiguous()


def palette_of(image) -> torch.Tensor:
    """The ``(6, 3)`` RGB palette of a photo (k-means in LAB, :func:`pnlib.palette.extract_palette`)."""
    return extract_palette(load_image(image))


def palette_lab_norm(palette) -> torch.Tensor:
    """Six colours (anything :func:`~pnlib.palette.parse_palette` takes) -> P_t, ``(6, 3)`` normalised LAB."""
    p = parse_palette(palette) if not torch.is_tensor(palette) else parse_palette(palette.detach().cpu())
    return normalize_lab(rgb_to_lab(p, dim=-1), dim=-1)


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

    A model with the palette head (ours) also reads the photo's own palette P_s, which is extracted
    here (:func:`source_palette`); the user gives only P_t. A palette comes in any order, so by default
    (``match=True``) its colours are first paired with P_s's by the least total ΔE00
    (:func:`~pnlib.palette.match_palette`): each colour of the photo turns into the closest target
    colour still free. ``match=False`` keeps the order: colour i of ``palette`` replaces colour i of
    :func:`palette_of` (the photo's palette, largest share first), as the palette sliders do. The paper's
    model (direct or affine head) reads the palette as given; ``match`` does not apply to it.
    """
    rgb = load_image(image)
    if model is None:
        model = cached_model(None, device)
    P_t, P_s = target_and_source(rgb, palette, model, match)
    dev = next(model.parameters()).device
    with torch.inference_mode():
        lab = rgb_to_lab(rgb.to(dev)[None])               # I_s in raw LAB, (1, 3, H, W)
        I_s = normalize_lab(lab).contiguous(memory_format=_memory_format(model))
        out = model.recolor_any_size(I_s, P_t[None].to(dev),
                                     None if P_s is None else P_s[None].to(dev))  # [I^L_s, Îab_t], normalised
        return compose_result(lab[:, :1], out[:, 1:])[0]


#: Pixels clustered for the source palette P_s inside :func:`recolor` (the same as ``palette_of``).
SOURCE_PALETTE_PIXELS = 20000


def source_palette(rgb: torch.Tensor) -> torch.Tensor:
    """P_s, the ``(6, 3)`` RGB palette of a ``(3, H, W)`` photo that the palette head reads."""
    return extract_palette(rgb, max_pixels=SOURCE_PALETTE_PIXELS)


def target_and_source(rgb: torch.Tensor, palette, model: PaletteNet, match: bool = True, src=None):
    """(P_t, P_s) in normalised LAB, ``(6, 3)`` each, for ``model`` on photo ``rgb`` (P_s None if unread).

    P_s is the photo's palette (``src``, RGB, or :func:`source_palette` of ``rgb``); with ``match`` the
    target's colours are reordered to pair with P_s's by least total ΔE00 (:func:`~pnlib.palette.match_palette`).
    """
    target = parse_palette(palette) if not torch.is_tensor(palette) else parse_palette(palette.detach().cpu())
    if not model.uses_source_palette:
        return palette_lab_norm(target), None
    src = source_palette(rgb) if src is None else src
    if match:
        target = match_palette(src, target)
    return palette_lab_norm(target), palette_lab_norm(src)


def _memory_format(model) -> torch.memory_format:
    """channels_last when the model's first conv weight is (optimize_for_inference), else contiguous."""
    w = model.encoder.stem[0].weight
    return torch.channels_last if w.ndim == 4 and w.is_contiguous(memory_format=torch.channels_last) \
        and not w.is_contiguous() else torch.contiguous_format


def recolor_palettes(image, palettes, model: PaletteNet | None = None, device="auto", batch: int = 8,
                      match: bool = True) -> np.ndarray:
    """One image, N palettes -> ``uint8 (N, H, W, 3)``: the same as N calls of :func:`recolor`, faster.

    Eq. (2) splits G into FE and RD, and only RD sees P_t: the content features c = FE(I_s) are
    computed once, then RD runs on ``batch`` palettes at a time (the §4.4 experiment, Fig. 6 / 7 grids).
    ``match``: as in :func:`recolor`.
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
        I_s, size = pad_to_multiple(normalize_lab(lab).contiguous(memory_format=_memory_format(model)))
        c = model.encoder(I_s)                              # FE(I_s): once
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            n = len(chunk)
            P_t = torch.stack([p for p, _ in chunk]).to(dev)
            P_s = torch.stack([q for _, q in chunk]).to(dev) if model.uses_source_palette else None
            ab_norm = model.forward_features([ci.expand(n, -1, -1, -1) for ci in c], P_t,
                                             I_s.expand(n, -1, -1, -1), P_s)
            outs.append(compose_result(lab[:, :1].expand(n, -1, -1, -1), crop_to(ab_norm, size)))
    return np.concatenate(outs)


def compose_result(L_s: torch.Tensor, ab_norm: torch.Tensor) -> np.ndarray:
    """[I^L_s, Îab_t] (raw L, normalised ab) -> display sRGB, uint8 (N, H, W, 3)."""
    ab = denormalize_lab(torch.cat([torch.zeros_like(ab_norm[:, :1]), ab_norm], 1))[:, 1:]
    rgb = lab_to_rgb(torch.cat([L_s, ab], 1), clip=True)   # L: the source's, exactly
    return rgb.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def _check_output(path: Path) -> None:
    from PIL import Image

    ext = path.suffix.lower()
    if ext not in Image.registered_extensions():
        raise ValueError(f"cannot write {path}: unknown image type {ext or '(no extension)'!r}; "
                         "use .png or .jpg")
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: the folder {path.parent} does not exist")


def cli_recolor(args) -> int:
    """``python -m pnlib recolor IMAGE (--palette P | --palette-from OTHER) -o OUT [--checkpoint C]``.

    Returns 0 after writing OUT (same size as IMAGE); on a user error prints one line ``error: ...``
    on stderr (no traceback) and returns 2: a missing or unreadable image, a bad palette (the message
    names the entry), a missing or foreign checkpoint, an output path that cannot be written.
    """
    from PIL import Image

    try:
        out = Path(args.output).expanduser()
        _check_output(out)
        rgb = load_image(args.image)
        if getattr(args, "palette_from", None):
            palette = palette_of(args.palette_from)
        else:
            palette = parse_palette(args.palette)
        model = cached_model(getattr(args, "checkpoint", None), getattr(args, "device", None) or "auto")
        result = recolor(rgb, palette, model=model)
        try:
            Image.fromarray(result).save(out)
        except OSError as e:
            raise ValueError(f"cannot write {out}: {e.strerror or e}") from None
    except (FileNotFoundError, ValueError) as e:  # CheckpointMismatch is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    h, w = result.shape[:2]
    print(f"wrote {out} ({w}x{h}) recolored to {' '.join(format_palette(palette))}")
    return 0


# --------------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------------

def bench_model(width: int = 16) -> tuple[PaletteNet, str]:
    """The model the benchmarks time: the shipped one on the CPU, else a fresh PaletteNet(width)."""
    if SHIPPED.is_file():
        return load_model(SHIPPED, "cpu"), f"shipped checkpoint {SHIPPED.name}"
    torch.manual_seed(0)
    model = optimize_for_inference(PaletteNet(width).eval())
    return model, f"a fresh PaletteNet({width}) (no shipped checkpoint yet; speed does not depend on the weights)"


def busy_note() -> str:
    """A warning to print beside a timing when other processes compete for the CPU, else "".

    With torch's threads on every core, a busy machine does not slow a run down a little but a lot:
    each of the hundreds of small parallel ops waits for a descheduled thread (seen here: 10-30x).
    Linux only: the running-thread count of /proc/loadavg, sampled while this process is idle.
    """
    import os

    try:
        counts = []
        for _ in range(5):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # minus the reading thread
            time.sleep(0.02)
    except (OSError, ValueError, IndexError):
        return ""
    others = statistics.median(counts)
    return (f"  [busy machine: {others:g} other running threads on {os.cpu_count()} cores; timing unreliable]"
            if others >= 1 else "")


def bench_photo(size=(288, 432)) -> np.ndarray:
    """The bundled astronaut photo resized to ``size = (H, W)``, uint8 (H, W, 3)."""
    from skimage import data, transform

    a = transform.resize(data.astronaut(), size, anti_aliasing=True)
    return (a * 255).round().astype(np.uint8)


def bench_recolor(sizes=((288, 432), (432, 288)), repeat: int = 5, threads: int = 2) -> list[dict]:
    """Latency of :func:`recolor` end to end (uint8 array in, uint8 array out), median of ``repeat``.

    Prints ``recolor HxW (2 threads): X s`` per size (H×W: 288x432 is landscape, 432x288 portrait);
    the target is 0.15 s for the width-16 model on a 2-core laptop CPU.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model, what = bench_model()
        print(f"recolor benchmark: {what}, width {model.width}")
        palette = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"
        results = []
        for H, W in sizes:
            img = bench_photo((H, W))
            recolor(img, palette, model=model)  # warm-up
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                recolor(img, palette, model=model)
                times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            print(f"recolor {H}x{W} ({threads} threads): {t:.3f} s (target <= 0.15 s){busy_note()}")
            results.append({"size": (H, W), "seconds": t, "threads": threads, "model": what})
        return results
    finally:
        torch.set_num_threads(prev)
