"""Working-resolution vs full-resolution inference (issue 17): ΔE00 between the two, stray edges of each,
and a figure that crops a detail at 100 % both ways.

    python benchmarks/large_photos.py [--photos FOLDER] [--largest N] [--figure figures/large_photo_detail.png]

Held-out photos: the bundled validation split (pnlib.data.load_split), each resized to 288×432 and
upscaled ×4 (1152×1728, bicubic), recolored to two targets (its own palette turned 120° in hue, and the
palette of the next held-out photo). ``--photos``: a folder of large photos, of which the ``--largest``
are recolored at their own size the same way. The model is the shipped one on the CPU. Prints a
Markdown table; writes the figure from the largest real photo (or the first held-out one).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pnlib.color import hue_shift, lab_to_rgb, uint8_to_lab
from pnlib.data import load_split
from pnlib.inference import load_model, palette_of, recolor
from pnlib.metrics import delta_e00, stray_edges

ROWS = 256  # rows per block for the metrics (float64 at 16 MP would need several GB)


def _lab(u8: np.ndarray, y0: int, y1: int) -> torch.Tensor:
    return uint8_to_lab(torch.from_numpy(u8[y0:y1].copy())).double()[None]


def compare(src: np.ndarray, work: np.ndarray, full: np.ndarray) -> dict:
    """Mean ΔE00(work, full) and the stray-edge shares of both against the source, over row blocks."""
    H = src.shape[0]
    de, n, stray_w, stray_f, m = 0.0, 0, 0.0, 0.0, 0
    for y0 in range(0, H - 1, ROWS):
        y1 = min(H, y0 + ROWS + 1)                   # one row of overlap: the forward differences
        s, w, f = _lab(src, y0, y1), _lab(work, y0, y1), _lab(full, y0, y1)
        rows = y1 - y0 - (1 if y1 < H else 0)
        de += float(delta_e00(w[..., :rows, :], f[..., :rows, :]).sum())
        n += rows * src.shape[1]
        k = (y1 - y0 - 1) * (src.shape[1] - 1)
        stray_w += float(stray_edges(w, s)[0]) * k
        stray_f += float(stray_edges(f, s)[0]) * k
        m += k
    return {"de00": de / n, "stray_work": stray_w / m, "stray_full": stray_f / m}


def targets(rgb: torch.Tensor, other: torch.Tensor) -> list:
    own = palette_of(rgb)
    turned = lab_to_rgb(hue_shift(own, 120.0, dim=-1), dim=-1, clip=True)
    return [("hue +120°", turned), ("next photo's palette", palette_of(other))]


def run_one(name, img, other_rgb, model, rows_out, work_size):
    rgb = torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255
    outs = None
    for label, P in targets(rgb, other_rgb):
        t0 = time.perf_counter()
        work = recolor(img, P, model=model, work_size=work_size)
        t1 = time.perf_counter()
        full = recolor(img, P, model=model, work_size=None)
        t2 = time.perf_counter()
        r = compare(img, work, full)
        rows_out.append({"photo": name, "size": f"{img.shape[1]}×{img.shape[0]}", "target": label,
                         "work_s": t1 - t0, "full_s": t2 - t1, **r})
        print(f"| {name} | {img.shape[1]}×{img.shape[0]} | {label} | {r['de00']:.2f} | "
              f"{100 * r['stray_work']:.2f} % | {100 * r['stray_full']:.2f} % | {t1 - t0:.1f} s | {t2 - t1:.1f} s |",
              flush=True)
        outs = outs or (work, full)
    return outs


def figure(img, work, full, path: Path, crop: int = 256):
    """Source | full-resolution inference | working-resolution inference: one crop at 100 %, side by side,
    from where the source has the most detail (largest mean gradient)."""
    g = np.abs(np.diff(img.astype(np.float32).mean(-1), axis=1))
    H, W = img.shape[:2]
    best, pos = -1.0, (0, 0)
    for y in range(0, H - crop, crop // 2):
        for x in range(0, W - crop, crop // 2):
            v = float(g[y:y + crop, x:x + crop - 1].mean())
            if v > best:
                best, pos = v, (y, x)
    y, x = pos
    tiles = [a[y:y + crop, x:x + crop] for a in (img, full, work)]
    gap = np.full((crop, 8, 3), 255, np.uint8)
    strip = np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], 1)
    from PIL import ImageDraw

    im = Image.new("RGB", (strip.shape[1], crop + 22), "white")
    im.paste(Image.fromarray(strip), (0, 22))
    d = ImageDraw.Draw(im)
    for i, t in enumerate(("source (100 %)", "network at full resolution", "network at work_size 1024")):
        d.text((i * (crop + 8) + 4, 5), t, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB; crop at x={x}, y={y} of {W}×{H})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", help="a folder of large photos")
    ap.add_argument("--largest", type=int, default=2)
    ap.add_argument("--held-out", type=int, default=4, help="how many held-out photos (default 4)")
    ap.add_argument("--work-size", type=int, default=1024)
    ap.add_argument("--figure", default="figures/large_photo_detail.png")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(None, "cpu")
    _, val = load_split("bundled")
    val = val[:a.held_out]
    rows = []
    print("| photo | size | target | ΔE00 work vs full | stray edges, work | stray edges, full | work s | full s |")
    print("|---|---|---|---|---|---|---|---|")
    fig = None
    for i, p in enumerate(val):
        small = torch.nn.functional.interpolate(p.rgb[None], size=(288, 432), mode="bilinear", antialias=True)
        big = torch.nn.functional.interpolate(small, scale_factor=4, mode="bicubic").clamp(0, 1)[0]
        img = (big.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        outs = run_one(p.name, img, val[(i + 1) % len(val)].rgb, model, rows, a.work_size)
        fig = fig or (img, *outs)
    if a.photos:
        files = sorted(Path(a.photos).iterdir(), key=lambda f: -np.prod(Image.open(f).size))[:a.largest]
        for i, f in enumerate(files):
            img = np.asarray(Image.open(f).convert("RGB"))
            nxt = Image.open(files[(i + 1) % len(files)]).convert("RGB").reduce(8)
            other = torch.from_numpy(np.asarray(nxt).copy())
            work, full = run_one(f.name, img, other.permute(2, 0, 1).float() / 255, model, rows, a.work_size)
            if i == 0:
                fig = (img, work, full)
    for label, sel in (("held-out ×4", [r for r in rows if r["photo"].startswith("bundled/")]),
                       ("large real photos", [r for r in rows if not r["photo"].startswith("bundled/")])):
        if sel:
            print(f"mean over {label}: ΔE00 {np.mean([r['de00'] for r in sel]):.2f}, stray edges work "
                  f"{100 * np.mean([r['stray_work'] for r in sel]):.2f} % vs full "
                  f"{100 * np.mean([r['stray_full'] for r in sel]):.2f} %")
    img, work, full = fig
    figure(img, work, full, Path(a.figure))


if __name__ == "__main__":
    main()
