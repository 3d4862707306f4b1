"""Benchmarks that print numbers (`python -m pnlib bench`). Speed targets are shown here, never by timed tests."""
from __future__ import annotations

import statistics
import time

import torch


def timeit(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_hue_shift(size=(288, 432), threads: int = 2) -> dict:
    """18 hue shifts (eq. 10, 0°..340°) of one photo: pnlib's batched torch vs a scikit-image loop."""
    import numpy as np
    from skimage import color as skc, data, transform

    from .color import hue_shift

    torch.set_num_threads(threads)
    rgb = transform.resize(data.astronaut(), size, anti_aliasing=True)
    angles = torch.arange(18, dtype=torch.float32) * 20
    one = torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1)[None]

    def ours():
        hue_shift(one, angles)  # one photo, 18 angles: its 18 augmented copies

    def skimage_loop():
        L = skc.rgb2lab(rgb)[..., :1]
        hsv = skc.rgb2hsv(rgb)
        for a in angles.tolist():
            h = hsv.copy()
            h[..., 0] = (h[..., 0] + a / 360) % 1
            np.concatenate([L, skc.rgb2lab(skc.hsv2rgb(h))[..., 1:]], -1)

    t_ours, t_sk = timeit(ours, 5), timeit(skimage_loop, 3)
    print(f"hue_shift x18 at {size[0]}x{size[1]} ({threads} threads): pnlib {t_ours:.3f} s, "
          f"skimage loop {t_sk:.3f} s, speed-up {t_sk / t_ours:.1f}x (target >= 5x)")
    return {"pnlib_s": t_ours, "skimage_s": t_sk, "speedup": t_sk / t_ours}


def main(args) -> int:
    """`python -m pnlib bench [what ...] [--train]`."""
    what = set(args.what) or {"color", "sampler", "chang"}
    if args.train:
        what.add("train")
    if "color" in what:
        bench_hue_shift()
    if "sampler" in what:
        from .data import bench_sampler
        bench_sampler()
    if "chang" in what:
        from .baselines import bench_chang
        bench_chang()
    return 0
