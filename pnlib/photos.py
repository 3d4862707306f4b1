"""Photos: the bundled ones, a folder of your own, and any image a user hands over -> float RGB.

* :func:`bundled_photos`: eight photos that ship inside scikit-image, scikit-learn and matplotlib.
* :func:`folder_photos`: a folder of your own photos, with an optional palettes file.
* :func:`read_image`: one file -> float32 ``(H, W, 3)`` sRGB in [0, 1], by one rule for grayscale,
  alpha, palette-mode and 16-bit images (:func:`_pil_to_float`, :func:`to_rgb3`).
* :func:`load_image`: a path, PIL image, numpy array or tensor -> ``(3, H, W)`` (pnlib.inference's input).
* :func:`load_pixels`: the same image as ``uint8 (H, W, 3)`` where that is exact (8-bit RGB, grey, ...):
  a 48 MP photo is 144 MB so, against 576 MB as float32 (what pnlib.inference reads large photos with).
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .palette import parse_palette

#: File name endings read from a photo folder (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Images with a side shorter than this are skipped (with a warning).
MIN_SIDE = 32
#: Images whose long side is longer than this are downsized once, on load (keeps memory small).
MAX_SIDE = 1024
#: The palette file looked for in a photo folder when none is given.
PALETTES_FILE = "palettes.csv"
#: The names of the eight bundled photos, in load order.
BUNDLED_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "china", "flower",
                 "grace_hopper")
_HEADER_WORDS = {"filename", "file", "image", "name", "path"}

# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------

def bundled_photos() -> list[tuple[str, np.ndarray]]:
    """The eight photos that ship inside installed packages (no network) -> ``[(name, uint8 (H, W, 3))]``.

    scikit-image: astronaut, chelsea, coffee, rocket, stereo_motorcycle (the left view: skimage returns
    ``(left, right, disparity)``); scikit-learn ``load_sample_images``: china, flower; matplotlib's
    sample data: grace_hopper. All are files inside the installed wheels.
    """
    import skimage.data as skd
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = [(n, getattr(skd, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket")]
    out.append(("stereo_motorcycle", skd.stereo_motorcycle()[0]))
    sk = load_sample_images()
    for fname, img in zip(sk.filenames, sk.images, strict=True):
        out.append((Path(fname).stem, img))
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        out.append(("grace_hopper", np.asarray(Image.open(f).convert("RGB"))))
    assert tuple(n for n, _ in out) == BUNDLED_NAMES, [n for n, _ in out]
    return [(n, np.ascontiguousarray(a[..., :3], dtype=np.uint8)) for n, a in out]


def _pil_to_float(im) -> np.ndarray:
    """A PIL image of any common mode -> float32 ``(H, W, 3)`` sRGB in [0, 1] (rules: :func:`folder_photos`)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("RGBa", "La"):  # premultiplied alpha
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
    elif mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    mode = im.mode
    if mode.startswith("I;16"):  # 16-bit grayscale (e.g. a 16-bit PNG)
        a = np.asarray(im).astype(np.float32) / 65535.0
    elif mode == "I":  # 32-bit integer: taken as 16-bit data (how 16-bit images reach this mode)
        a = np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0, 1).astype(np.float32)
    elif mode == "F":  # float: [0, 1] if it fits, else 0-255, else 0-65535
        a = np.asarray(im, dtype=np.float32)
        top = float(np.nanmax(a)) if a.size else 0.0
        a = np.clip(np.nan_to_num(a / (1.0 if top <= 1 else 255.0 if top <= 255 else 65535.0)), 0, 1)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        a = np.asarray(im).astype(np.float32) / 255.0
    else:  # anything else Pillow can convert
        a = np.asarray(im.convert("RGB")).astype(np.float32) / 255.0
    if a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"cannot read {a.shape[-1]} channels (mode {mode})")
    return to_rgb3(a)


def to_rgb3(a: np.ndarray) -> np.ndarray:
    """Float ``(H, W)`` or ``(H, W, 1-4)`` in [0, 1] -> ``(H, W, 3)``: grey repeated, alpha over white.

    Compositing over white: rgb * alpha + 1 * (1 - alpha) (gray + alpha likewise).
    """
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] in (2, 4):
        alpha = a[..., -1:]
        a = a[..., :-1] * alpha + (1.0 - alpha)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a, dtype=np.float32)


def read_image(path) -> np.ndarray:
    """Read one photo with Pillow -> float32 ``(H, W, 3)`` sRGB in [0, 1] (rules: :func:`folder_photos`)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block: keep the pixels as stored
            pass
        return _pil_to_float(im)


def read_palettes_file(path) -> dict[str, tuple[torch.Tensor, int]]:
    """Read a palettes CSV -> ``{relative filename: ((6, 3) RGB palette, line number)}``.

    Format (UTF-8, comma separated): each row is a filename relative to the photo folder ('/'
    separators), then six colours, as :func:`pnlib.palette.parse_palette` reads them (``#rrggbb``,
    ``#rgb`` or CSS names)::

        # lines starting with '#' are comments; blank lines are ignored
        filename, c1, c2, c3, c4, c5, c6          <- optional header (first cell filename/file/image/name/path)
        beach/sunset.jpg, #e63946, #f1faee, #a8dadc, #457b9d, #1d3557, #ffb703

    A malformed row (wrong number of colours, a bad colour, no filename, a repeated filename) raises
    ``ValueError`` naming the file, the line number and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"palettes file not found: {path}")
    out: dict[str, tuple[torch.Tensor, int]] = {}
    first = True
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([line], skipinitialspace=True))]
        while fields and not fields[-1]:
            fields.pop()
        if first and fields and fields[0].lower() in _HEADER_WORDS:
            first = False
            continue
        first = False
        where = f"{path}, line {lineno}"
        if not fields or not fields[0]:
            raise ValueError(f"{where}: the row has no filename (want: filename, then 6 colours)")
        name = _norm_rel(fields[0])
        try:
            pal = parse_palette(",".join(fields[1:]))
        except ValueError as e:
            raise ValueError(f"{where} ({fields[0]}): {e}") from None
        if name in out:
            raise ValueError(f"{where}: {fields[0]!r} already has a palette on line {out[name][1]}")
        out[name] = (pal, lineno)
    return out


def _norm_rel(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _image_files(root: Path) -> list[tuple[str, Path]]:
    """``[(relative name, path)]`` of the image files under ``root``, hidden ones left out, sorted."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                files.append(Path(dirpath, f))
    return sorted((p.relative_to(root).as_posix(), p) for p in files)


def _read_photos(rel, table: dict, max_side: int | None) -> tuple[list, list[str]]:
    """Read each file by the rules of :func:`folder_photos` -> ``(photos, reasons for the skipped ones)``."""
    out, skipped = [], []
    for name, p in rel:
        try:
            a = read_image(p)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable"
            skipped.append(f"{name}: unreadable ({type(e).__name__}: {e})")
            continue
        h, w = a.shape[:2]
        if min(h, w) < MIN_SIDE:
            skipped.append(f"{name}: too small ({w}x{h} px; need at least {MIN_SIDE} px on each side)")
            continue
        if max_side is not None and max(h, w) > max_side:
            a = _downsize(torch.from_numpy(a).permute(2, 0, 1), max_side).permute(1, 2, 0).numpy()
        out.append((name, a, table[name][0] if name in table else None))
    return out, skipped


def folder_photos(path, palettes=None, max_side: int | None = MAX_SIDE, skipped: list | None = None
                  ) -> list[tuple[str, np.ndarray, torch.Tensor | None]]:
    """Every photo under ``path`` (recursive) -> ``[(relative name, float32 (H, W, 3) in [0, 1], palette or None)]``.

    Files: extensions jpg, jpeg, png, webp, bmp, tif, tiff in any case; hidden files and folders
    (name starting with '.') are ignored; sorted by relative path; names use '/' separators.

    ``palettes``: a palettes CSV (format: :func:`read_palettes_file`); ``None`` uses
    ``<path>/palettes.csv`` if there is one. A photo without a row gets ``None`` (:func:`pnlib.data.load_pairs`
    then extracts its palette).

    Image rules (all read with Pillow, EXIF orientation applied):

    * grayscale (L, 1-bit) -> three equal channels;
    * RGBA, LA (and premultiplied RGBa / La) -> composited over **white**: rgb * a + (1 - a);
    * palette mode 'P' -> RGB; 'P' with a transparency entry -> RGBA -> over white; CMYK / YCbCr -> RGB;
    * 16-bit grayscale ('I;16*', e.g. a 16-bit PNG) -> divided by 65535 (so it matches an 8-bit copy
      divided by 255); 32-bit integer 'I' -> also divided by 65535; float 'F' -> taken as [0, 1] if its
      maximum fits, else 0-255, else 0-65535. 48-bit RGB PNG / TIFF are decoded by Pillow as 8-bit RGB
      (the high byte): the right scale at 8-bit precision;
    * an image whose long side exceeds ``max_side`` is downsized (antialiased) to that long side;
    * skipped: unreadable / corrupt files and images under 32 px on a side. One ``warnings.warn`` lists
      every skipped file with the reason (and any palettes-file row that names no photo); given a list
      ``skipped``, the reasons go there instead (:func:`pnlib.data.load_split` reports them itself).

    Raises ``FileNotFoundError`` for a missing folder, ``NotADirectoryError`` for a file, and (without
    ``skipped``) ``ValueError`` when no usable photo is left (the message lists what was skipped).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"photo folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    if palettes is None and (root / PALETTES_FILE).is_file():
        palettes = root / PALETTES_FILE
    table = read_palettes_file(palettes) if palettes is not None else {}
    rel = _image_files(root)
    out, reasons = _read_photos(rel, table, max_side)
    found = {n for n, _ in rel}  # a row for a skipped (corrupt) photo is not "missing"
    reasons += [f"{palettes}, line {lineno}: no photo named {name!r} in {root}"
                for name, (_, lineno) in table.items() if name not in found]
    if skipped is not None:
        skipped.extend(reasons)
        return out
    if not out:
        what = "; ".join(reasons) if reasons else "no files ending in " + ", ".join(IMAGE_EXTENSIONS)
        raise ValueError(f"no usable photo in {root} ({what})")
    if reasons:
        warn_skipped(root, reasons)
    return out


def warn_skipped(root, reasons: list[str]) -> None:
    """The one warning that lists the files skipped while reading the folder ``root``, with the reasons."""
    warnings.warn(f"{len(reasons)} skipped while reading {root}:\n  " + "\n  ".join(reasons), stacklevel=3)


# --------------------------------------------------------------------------------------------------
# D_orig
# --------------------------------------------------------------------------------------------------

def _downsize(rgb: torch.Tensor, max_side: int) -> torch.Tensor:
    """``(3, H, W)`` -> the same aspect with long side ``max_side`` (antialiased bilinear)."""
    h, w = rgb.shape[-2:]
    s = max_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(rgb[None], size=size, mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp_(0, 1)


def load_image(x) -> torch.Tensor:
    """An image -> float32 ``(3, H, W)`` sRGB in [0, 1] on the CPU.

    ``x`` may be a path (str / Path, read by :func:`read_image`: EXIF orientation applied,
    grayscale -> three channels, alpha composited over white); a PIL image (the same rules); a numpy
    array ``(H, W)``, ``(H, W, 1|2|3|4)`` of uint8 (0-255), uint16 (0-65535) or floats in [0, 1] (2 and
    4 channels carry alpha: composited over white, as in :func:`folder_photos`); or a tensor ``(3, H, W)``
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


#: PIL modes whose pixels :func:`_pil_to_float` maps to exactly ``uint8 / 255`` after ``convert("RGB")``.
_UINT8_MODES = ("RGB", "L", "1", "P", "CMYK", "YCbCr", "RGBX", "LAB", "HSV")


def load_pixels(x):
    """An image as :func:`load_image` reads it, but ``uint8 (H, W, 3)`` (numpy) where that is exact.

    8-bit RGB, grey, palette (without transparency) and CMYK images come back as their uint8 RGB
    pixels, whose ``/ 255`` is exactly what :func:`load_image` returns, at a quarter of its memory.
    Anything else (alpha, 16-bit, float arrays, tensors) comes back as :func:`load_image`'s float32
    ``(3, H, W)`` tensor. The same errors as :func:`load_image`.
    """
    from PIL import Image

    if isinstance(x, (str, Path)):
        p = Path(x).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"image not found: {p}")
        try:
            with Image.open(p) as im:
                im.load()
                return _pil_pixels(im)
        except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable"
            raise ValueError(f"cannot read image {p}: unreadable or not an image "
                             f"({type(e).__name__}: {e})") from None
    if isinstance(x, Image.Image):
        return _pil_pixels(x)
    if isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim in (2, 3) and min(x.shape[:2]) >= 1:
        if x.ndim == 2 or x.shape[-1] == 1:
            return np.repeat(x.reshape(x.shape[:2])[..., None], 3, axis=-1)
        if x.shape[-1] == 3:
            return np.ascontiguousarray(x)
    return load_image(x)


def _pil_pixels(im):
    """A PIL image (EXIF orientation applied) -> uint8 ``(H, W, 3)`` if exact, else float ``(3, H, W)``."""
    from PIL import ImageOps

    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
        pass
    if im.mode in _UINT8_MODES and not (im.mode == "P" and "transparency" in im.info):
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    return _hwc_to_chw(_pil_to_float(im))


def _hwc_to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1).contiguous()


def _array_image(a: np.ndarray) -> np.ndarray:
    """A numpy image -> float32 (H, W, 3); integer arrays go through Pillow and folder_photos' rules."""
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
    return to_rgb3(np.clip(a, 0.0, 1.0))  # folder_photos' rule for float data too


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
