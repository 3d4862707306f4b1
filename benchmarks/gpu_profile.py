"""Why phase 1 is slow on a GPU: a profile of the paper's head and a few variants, in about two minutes.

    python benchmarks/gpu_profile.py [--preset full] [--out DIR]

Prints (and writes DIR/profile.txt): the top CUDA kernels of 5 phase-1 steps (torch.profiler), the GPU's
busy share of the wall time (host gaps), the sampler's time, and phase-1 images/s for variants: eager
(as trained), channels_last, a larger batch, and torch.compile. Run by benchmarks/gpu_check.sh's
follow-up; results in benchmarks/RESULTS.md. On a CPU it runs the same steps at the preset given.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pnlib.bench import timeit  # noqa: E402
from pnlib.config import get_config  # noqa: E402
from pnlib.train import build_run, enable_tf32, phase1_step  # noqa: E402


def rate(run, batch_of, steps=10, warmup=3):
    dev = run.device
    t = timeit(lambda: phase1_step(run, batch_of()), steps, warmup, sync=dev)
    return run.cfg["batch"] / t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="full")
    ap.add_argument("--out", default=".")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    lines = []

    def say(s):
        print(s, flush=True)
        lines.append(s)

    cfg = get_config(a.preset, head="direct")
    run = build_run(cfg, Path(tempfile.mkdtemp()))
    dev = run.device
    enable_tf32(dev)
    b = run.sampler.sample(with_o=False)
    say(f"device {torch.cuda.get_device_name(0) if dev.type == 'cuda' else dev}, preset {a.preset}, "
        f"batch {cfg['batch']}, size {cfg['size']}, head direct")
    t_s = timeit(lambda: run.sampler.sample(with_o=False), 10, 2, sync=dev)
    r_eager = rate(run, lambda: run.sampler.sample(with_o=False))
    r_fixed = rate(run, lambda: b)
    say(f"eager, sampler each step: {r_eager:.0f} img/s; same batch reused (no sampler): {r_fixed:.0f} img/s; "
        f"sampler alone {1000 * t_s:.1f} ms per batch")

    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(5):
            phase1_step(run, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    key = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=60)
    say(table)
    if dev.type == "cuda":
        evs = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.time_range.elapsed_us() for e in evs) / 1e6
        say(f"5 steps: wall {wall:.3f} s, kernels {len(evs)}, summed kernel time {busy:.3f} s "
            f"({100 * busy / wall:.0f}% of wall; below 100%: host gaps)")

    # channels_last: a fresh run (its fused Adam's state must be made for the NHWC weights)
    run_cl = build_run(cfg, Path(tempfile.mkdtemp()))
    run_cl.G.to(memory_format=torch.channels_last)
    run_cl.opt_g = torch.optim.Adam(run_cl.G.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                                    fused=dev.type == "cuda")
    bcl = {k: (v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.ndim == 4 else v)
           for k, v in b.items()}
    say(f"channels_last, same batch: {rate(run_cl, lambda: bcl):.0f} img/s")
    del run_cl
    # larger batch
    cfg2 = get_config(a.preset, head="direct", batch=cfg["batch"] * 2)
    run2 = build_run(cfg2, Path(tempfile.mkdtemp()))
    b2 = run2.sampler.sample(with_o=False)
    say(f"batch {cfg2['batch']}, same batch: {rate(run2, lambda: b2):.0f} img/s")
    del run2
    if a.compile:
        t0 = time.perf_counter()
        run.G.encoder.compile()
        run.G.decoder.compile()
        r = rate(run, lambda: b, steps=10, warmup=2)
        say(f"torch.compile (FE, RD), same batch: {r:.0f} img/s "
            f"(compile + 12 steps took {time.perf_counter() - t0:.0f} s)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "profile.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
