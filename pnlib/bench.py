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

    def skimage_eq10(deg):  # eq. (10) as a scikit-image user writes it, one call per angle
        L = skc.rgb2lab(rgb)[..., :1]
        hsv = skc.rgb2hsv(rgb)
        hsv[..., 0] = (hsv[..., 0] + deg / 360) % 1
        return np.concatenate([L, skc.rgb2lab(skc.hsv2rgb(hsv))[..., 1:]], -1)

    def skimage_loop():
        for a in angles.tolist():
            skimage_eq10(a)

    def skimage_hoisted():  # the same with L and HSV of the source taken out of the loop
        L = skc.rgb2lab(rgb)[..., :1]
        hsv = skc.rgb2hsv(rgb)
        for a in angles.tolist():
            h = hsv.copy()
            h[..., 0] = (h[..., 0] + a / 360) % 1
            np.concatenate([L, skc.rgb2lab(skc.hsv2rgb(h))[..., 1:]], -1)

    t_ours, t_sk, t_hoist = timeit(ours, 10, warmup=2), timeit(skimage_loop, 5), timeit(skimage_hoisted, 5)
    print(f"hue_shift x18 at {size[0]}x{size[1]} ({threads} threads): pnlib {t_ours:.3f} s; skimage loop of "
          f"eq. (10) {t_sk:.3f} s: {t_sk / t_ours:.1f}x (target >= 5x); skimage loop with L and HSV "
          f"hoisted {t_hoist:.3f} s: {t_hoist / t_ours:.1f}x")
    return {"pnlib_s": t_ours, "skimage_s": t_sk, "speedup": t_sk / t_ours, "skimage_hoisted_s": t_hoist}


def main(args) -> int:
    """`python -m pnlib bench [what ...] [--train]`."""
    what = set(args.what) or {"color", "sampler", "chang", "recolor", "widget"}
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
    if "recolor" in what:
        from .inference import bench_recolor
        bench_recolor()
    if "widget" in what:
        from .widgets import bench_widget
        bench_widget()
    if "train" in what:
        bench_train()
    return 0


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_tflops(device, n: int | None = None, repeat: int = 10) -> float:
    """Measured dense matmul throughput (bf16 on CUDA, fp32 on the CPU), in TFLOP/s."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        a @ b
    _sync(device)
    return 2 * n ** 3 * repeat / (time.perf_counter() - t0) / 1e12


def bench_train(preset: str | None = None, steps: int = 20, warmup: int = 3, **overrides) -> dict:
    """Training throughput of both phases, inference throughput, sampler share and share of matmul peak.

    Uses the `full` preset (288×432) on a GPU and `quick` on a CPU unless ``preset`` is given. The
    phase-1 FLOPs per image are 3× the forward pass (forward + backward ≈ 2× forward).
    """
    import tempfile
    from pathlib import Path

    from .model import _gflops
    from .train import _autocast, build_run, enable_tf32, freeze_encoder, get_config, phase1_step, phase2_step

    device_probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = preset or ("full" if device_probe.type == "cuda" else "quick")
    cfg = get_config(preset, **overrides)
    run = build_run(cfg, Path(tempfile.mkdtemp(prefix="pnlib-bench-")))
    dev, B = run.device, cfg["batch"]
    enable_tf32(dev)

    def timed(fn, n):
        for _ in range(warmup):
            fn()
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        _sync(dev)
        return (time.perf_counter() - t0) / n

    t_sample = timed(lambda: run.sampler.sample(with_o=False), steps)
    t_p1 = timed(lambda: phase1_step(run, run.sampler.sample(with_o=False)), steps)
    freeze_encoder(run.G)
    t_p2 = timed(lambda: phase2_step(run, run.sampler.sample()), steps)
    b = run.sampler.sample(with_o=False)

    def infer():
        with torch.no_grad(), _autocast(dev):
            run.G(b["I_s"], b["P_t"])

    t_inf = timed(infer, steps)
    gflop_fwd = _gflops(lambda: run.G(b["I_s"][:1].float(), b["P_t"][:1]))
    peak = matmul_peak_tflops(dev)
    achieved = B / t_p1 * 3 * gflop_fwd / 1e3
    H, W = cfg["size"]
    res = {"device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(0), "preset": preset,
           "size": [H, W], "batch": B, "width": cfg["width"],
           "phase1_img_s": B / t_p1, "phase2_img_s": B / t_p2, "inference_img_s": B / t_inf,
           "sampler_share_phase1": t_sample / t_p1, "gflop_forward_per_image": gflop_fwd,
           "matmul_peak_tflops": peak, "phase1_tflops": achieved, "fraction_of_peak": achieved / peak}
    print(f"training bench on {res['device']}, preset {preset} ({H}x{W}, batch {B}, width {cfg['width']}):")
    print(f"  phase 1: {res['phase1_img_s']:.1f} images/s   phase 2: {res['phase2_img_s']:.1f} images/s   "
          f"inference: {res['inference_img_s']:.1f} images/s")
    print(f"  sampler: {100 * res['sampler_share_phase1']:.1f}% of a phase-1 step")
    print(f"  {gflop_fwd:.2f} GFLOP per forward image; phase 1 runs at {achieved:.2f} TFLOP/s = "
          f"{100 * res['fraction_of_peak']:.1f}% of the measured matmul peak ({peak:.2f} TFLOP/s, "
          f"{'bf16' if dev.type == 'cuda' else 'fp32'})")
    return res
