"""Benchmarks that print numbers (`python -m pnlib bench`). Speed targets are shown here, never by timed tests.

Every benchmark times with :func:`timeit` (median of repeats after a warm-up, each timed by
:class:`pnlib.config.Stopwatch`), runs with a fixed number of torch threads
(:func:`pnlib.config.torch_threads`, restored afterwards) and prints :func:`busy_note` beside its number
when other processes compete for the CPU. Each takes its sizes and repeat counts as arguments (the tests
run them small), and those that time a model take any checkpoint (``checkpoint``; default the shipped
one), so every head can be timed. The top layer: it imports what it times.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from .config import SHIPPED, Stopwatch, torch_threads


def timeit(fn, repeat: int = 5, warmup: int = 1, sync=None) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs.

    ``sync``: a device to wait for (CUDA runs asynchronously) before each clock reading.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        with Stopwatch(sync) as t:
            fn()
        times.append(t.s)
    return statistics.median(times)


def busy_note() -> str:
    """A warning to print beside a timing when other processes compete for the CPU, else "".

    With torch's threads on every core, a busy machine does not slow a run down a little but a lot:
    each of the hundreds of small parallel ops waits for a descheduled thread (seen here: 10-30x).
    Linux only: the running-thread count of /proc/loadavg, sampled while this process is idle.
    """
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
    """The bundled astronaut photo resized to ``size = (H, W)``, uint8 (H, W, 3) (above 4 MP by Pillow's
    bicubic upscaling, which needs no float64 copy of a 48 MP photo)."""
    from skimage import data, transform

    if size[0] * size[1] > 4_000_000:
        from PIL import Image

        return np.asarray(Image.fromarray(data.astronaut()).resize(size[::-1], Image.BICUBIC))
    a = transform.resize(data.astronaut(), size, anti_aliasing=True)
    return (a * 255).round().astype(np.uint8)


def bench_model(checkpoint=None):
    """The model the benchmarks time, on the CPU, and a line naming it: ``checkpoint`` (any pnlib
    checkpoint, any head), else the shipped one, else a fresh network of the `quick` preset (ours, the
    palette head, as shipped: speed does not depend on the weights)."""
    from .config import get_config
    from .inference import load_model, optimize_for_inference
    from .model import PaletteNet

    path = checkpoint if checkpoint is not None else SHIPPED if SHIPPED.is_file() else None
    if path is not None:
        model = load_model(path, "cpu")
        return model, f"checkpoint {os.path.basename(str(path))} ({model.head} head, width {model.width})"
    torch.manual_seed(0)
    model = optimize_for_inference(PaletteNet.from_config(get_config("quick")).eval())
    return model, (f"a fresh PaletteNet({model.width}, {model.head!r}) (no shipped checkpoint; speed does not "
                   "depend on the weights)")


def bench_hue_shift(size=(288, 432), threads: int = 2, repeat: int = 5) -> dict:
    """18 hue shifts (eq. 10, 0°..340°) of one photo: pnlib's batched torch vs a scikit-image loop
    (medians of ``repeat`` runs of each loop, ``2 * repeat`` of pnlib's)."""
    import numpy as np
    from skimage import color as skc
    from skimage import data, transform

    from .color import hue_shift

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

    with torch_threads(threads):
        t_ours, t_sk = timeit(ours, 2 * repeat, warmup=2), timeit(skimage_loop, repeat)
        t_hoist = timeit(skimage_hoisted, repeat)
    print(f"hue_shift x18 at {size[0]}x{size[1]} ({threads} threads): pnlib {t_ours:.3f} s; skimage loop of "
          f"eq. (10) {t_sk:.3f} s: {t_sk / t_ours:.1f}x (target >= 5x); skimage loop with L and HSV "
          f"hoisted {t_hoist:.3f} s: {t_hoist / t_ours:.1f}x")
    return {"pnlib_s": t_ours, "skimage_s": t_sk, "speedup": t_sk / t_ours, "skimage_hoisted_s": t_hoist}


def main(args) -> int:
    """`python -m pnlib bench [what ...] [--train] [--checkpoint C] [--preset P --head H ... --steps N]`.

    ``--checkpoint``: the model that ``recolor`` and ``widget`` time (default the shipped one);
    ``--preset``, ``--head``, ``--steps``: what ``train`` times.
    """
    benches = {"color": bench_hue_shift, "sampler": bench_sampler, "chang": bench_chang,
               "recolor": bench_recolor, "widget": bench_widget, "train": bench_train}
    unknown = set(args.what) - set(benches)
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(benches)}")
    what = set(args.what) or set(benches) - {"train"}
    if args.train:
        what.add("train")
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is not None:
        if not what & {"recolor", "widget"}:
            raise ValueError("--checkpoint chooses the model of the recolor and widget benchmarks; ask for one")
        bench_model(checkpoint)  # a missing or foreign file: a clear error before any timing
    results = {}
    for name, bench in benches.items():  # in this order, whatever the order asked
        if name not in what:
            continue
        if name == "train":
            steps = getattr(args, "steps", None) or 20
            results[name] = [bench_train(getattr(args, "preset", None), head=h, steps=steps)
                             for h in (getattr(args, "head", None) or [None])]
        elif name in ("recolor", "widget"):
            results[name] = bench(checkpoint=checkpoint)
        else:
            results[name] = bench()
    if getattr(args, "json", None):
        import json
        from pathlib import Path

        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


def matmul_peak_tflops(device, n: int | None = None, repeat: int = 10) -> float:
    """Measured dense matmul throughput (bf16 on CUDA, fp32 on the CPU), in TFLOP/s."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n ** 3 / timeit(lambda: a @ b, repeat, sync=device) / 1e12


def bench_train(preset: str | None = None, steps: int = 20, warmup: int = 3, peak_n: int | None = None,
                **overrides) -> dict:
    """Training throughput of both phases, inference throughput, sampler share and share of matmul peak.

    Uses the `full` preset (288×432) on a GPU and `quick` on a CPU unless ``preset`` is given;
    ``overrides``: settings of the preset (``head=...``). The phase-1 FLOPs per image are 3× the forward
    pass (forward + backward ≈ 2× forward). ``peak_n``: the side of the matmul that measures the peak
    (default :func:`matmul_peak_tflops`'s).
    """
    import tempfile

    from .config import get_config
    from .train import build_run

    device_probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = preset or ("full" if device_probe.type == "cuda" else "quick")
    cfg = get_config(preset, **overrides)
    with tempfile.TemporaryDirectory(prefix="pnlib-bench-") as out:   # the run folder: nothing is saved
        run = build_run(cfg, out)
        t = _train_timings(run, steps, warmup)
    dev, B, (H, W) = run.device, cfg["batch"], cfg["size"]
    peak = matmul_peak_tflops(dev, peak_n)
    achieved = B / t["phase1"] * 3 * t["gflop_forward"] / 1e3
    res = {"device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(0), "preset": preset,
           "head": cfg["head"], "size": [H, W], "batch": B, "width": cfg["width"],
           "phase1_img_s": B / t["phase1"], "phase2_img_s": B / t["phase2"], "inference_img_s": B / t["inference"],
           "sampler_share_phase1": t["sample"] / t["phase1"], "gflop_forward_per_image": t["gflop_forward"],
           "matmul_peak_tflops": peak, "phase1_tflops": achieved, "fraction_of_peak": achieved / peak}
    _print_train(res, dev)
    return res


def _train_timings(run, steps: int, warmup: int) -> dict:
    """Seconds per sampler batch, phase-1 step, phase-2 step and inference batch of a run (medians of
    ``steps``), and the forward GFLOPs of one image."""
    from .model import _gflops
    from .train import _autocast, enable_tf32, freeze_encoder, phase1_step, phase2_step

    dev = run.device
    enable_tf32(dev)

    def timed(fn):
        return timeit(fn, steps, warmup, sync=dev)

    t = {"sample": timed(lambda: run.sampler.sample(with_o=False)),
         "phase1": timed(lambda: phase1_step(run, run.sampler.sample(with_o=False)))}
    freeze_encoder(run.G)
    t["phase2"] = timed(lambda: phase2_step(run, run.sampler.sample()))
    b = run.sampler.sample(with_o=False)
    P_s = b.get("P_s")  # the palette head (ours) also reads the source's palette

    def infer():
        with torch.no_grad(), _autocast(dev):
            run.G(b["I_s"], b["P_t"], P_s)

    t["inference"] = timed(infer)
    t["gflop_forward"] = _gflops(lambda: run.G(b["I_s"][:1].float(), b["P_t"][:1], None if P_s is None else P_s[:1]))
    return t


def _print_train(res: dict, dev: torch.device) -> None:
    (H, W), B = res["size"], res["batch"]
    who = "the paper's" if res["head"] == "direct" else "ours"
    print(f"training bench on {res['device']}, preset {res['preset']} ({H}x{W}, batch {B}, width {res['width']}), "
          f"head {res['head']} ({who}):")
    print(f"  phase 1: {res['phase1_img_s']:.1f} images/s   phase 2: {res['phase2_img_s']:.1f} images/s   "
          f"inference: {res['inference_img_s']:.1f} images/s")
    print(f"  sampler: {100 * res['sampler_share_phase1']:.1f}% of a phase-1 step")
    print(f"  {res['gflop_forward_per_image']:.2f} GFLOP per forward image; phase 1 runs at "
          f"{res['phase1_tflops']:.2f} TFLOP/s = {100 * res['fraction_of_peak']:.1f}% of the measured matmul "
          f"peak ({res['matmul_peak_tflops']:.2f} TFLOP/s, {'bf16' if dev.type == 'cuda' else 'fp32'})")


def bench_sampler(sizes=((96, 144), (288, 432)), batch_size: int = 16, n: int = 20, threads: int = 2
                  ) -> list[dict]:
    """Time :meth:`pnlib.data.PairSampler.sample` on the CPU over the bundled training photos.

    Prints ``sampler HxW batch B: X batches/s`` per size and returns one dict per size. (On a machine
    whose cores are busy with other work, 2 threads can be many times slower than 1: torch's threads
    wait on each other. Compare with ``threads=1`` there.)
    """
    from .data import PairSampler, load_pairs, split_pairs

    with torch_threads(threads):
        train, _ = split_pairs(load_pairs("bundled"))
        results = []
        for H, W in sizes:
            sampler = PairSampler(train, size=(H, W), batch_size=batch_size, seed=0)
            t = timeit(sampler.sample, n, warmup=2)
            print(f"sampler {H}x{W} batch {batch_size}: {1 / t:.1f} batches/s{busy_note()}")
            results.append({"size": (H, W), "batch_size": batch_size, "n": n, "seconds": t * n,
                            "batches_per_s": 1 / t, "threads": threads})
        return results


def bench_chang(repeats: int = 5, grid: int = 16, threads: int = 2, size=(288, 432)) -> float:
    """Time :func:`pnlib.baselines.chang_recolor` on a 432×288 photo (skimage's astronaut, resized to
    ``size = (H, W)``); print, return s.

    The source palette is :func:`~pnlib.baselines.chang_palette` of the photo, the target its 120° hue
    shift; the time is the median of ``repeats`` runs of the recolouring alone.
    """
    from .baselines import chang_palette, chang_recolor
    from .color import hue_shift, lab_to_rgb

    with torch_threads(threads):
        rgb = torch.from_numpy(bench_photo(size).astype(np.float32) / 255).permute(2, 0, 1).contiguous()
        src = chang_palette(rgb)
        tgt = lab_to_rgb(hue_shift(src, 120.0, dim=-1), dim=-1, clip=True)
        med = timeit(lambda: chang_recolor(rgb, src, tgt, grid=grid), repeats)
    print(f"chang {size[1]}x{size[0]}: {med:.3f} s{busy_note()}")
    return med


#: bench_recolor's sizes (H, W): the paper's 288×432 both ways, 1080×1920, 12 MP and 48 MP.
RECOLOR_SIZES = ((288, 432), (432, 288), (1080, 1920), (3000, 4000), (6000, 8000))


def bench_recolor(sizes=RECOLOR_SIZES, repeat: int = 5, threads: int = 2, work_size: int | None = 1024,
                  checkpoint=None) -> list[dict]:
    """Latency and peak memory of :func:`pnlib.recolor` end to end (uint8 array in, uint8 array out).

    Each size runs in a fresh process (:func:`_recolor_row`), so its peak memory is honest: the
    process's peak resident set (``ru_maxrss``: Python, torch, the model, the uint8 photo and
    recolor itself), printed beside the memory it had before recolor ran. The time is the median of
    ``repeat`` runs (fewer above 4 MP: one warm-up and ``max(1, repeat // 2)``). Prints
    ``recolor HxW (2 threads): X s, peak Y MB`` per size; targets: 0.15 s at 288×432 for the width-16
    model on a 2-core laptop CPU, 1.5 s at 12 MP, 2 GB at 48 MP. The photo is the bundled astronaut
    resized to each size; the model is :func:`bench_model` of ``checkpoint``.
    """
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    _, what = bench_model(checkpoint)
    checkpoint = None if checkpoint is None else str(Path(checkpoint).expanduser().resolve())
    print(f"recolor benchmark: {what}, work_size {work_size}, a fresh process per size")
    root = str(Path(__file__).resolve().parents[1])   # this pnlib, whatever the child's working folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    results = []
    with tempfile.TemporaryDirectory(prefix="pnlib-bench-") as tmp:
        for H, W in sizes:
            photo = Path(tmp) / f"{H}x{W}.npy"
            np.save(photo, bench_photo((H, W)))
            n = repeat if H * W <= 4_000_000 else max(1, repeat // 2)
            args = json.dumps({"photo": str(photo), "repeat": n, "threads": threads, "work_size": work_size,
                               "checkpoint": checkpoint})
            proc = subprocess.run([sys.executable, "-c", "import sys; from pnlib.bench import _recolor_row; "
                                   "_recolor_row(sys.argv[1])", args], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"recolor {H}x{W} failed:\n{proc.stderr[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            target = {(288, 432): " (target <= 0.15 s)", (432, 288): " (target <= 0.15 s)",
                      (3000, 4000): " (target <= 1.5 s)", (6000, 8000): " (target <= 2048 MB)"}.get((H, W), "")
            print(f"recolor {H}x{W} ({threads} threads): {row['seconds']:.3f} s, peak {row['peak_mb']:.0f} MB "
                  f"(before recolor {row['base_mb']:.0f} MB){target}{busy_note()}")
            results.append({"size": (H, W), "threads": threads, "model": what, "work_size": work_size, **row})
        for r in results:   # at the paper's 432×288: beside Chang et al., like for like
            if tuple(r["size"]) == (288, 432):
                r["versus_chang"] = _versus_chang(threads, repeat, checkpoint=checkpoint)
        return results


#: The designer palette every recolor benchmark asks for (in no particular order: it is paired with P_s).
BENCH_PALETTE = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"


def _versus_chang(threads: int, repeat: int, rounds: int = 5, checkpoint=None) -> dict:
    """Ours and Chang et al. on the same 432×288 photo and designer palette, in this process, like for
    like, interleaved: ``rounds`` rounds, each running every method once to warm up and then ``repeat``
    timed times; each time is the median of all its ``rounds × repeat`` runs (on a shared machine
    a run-to-run spread of ±20 % moves both alike this way). Target ours/theirs <= 1.

    * from the photo: each method's P_s extracted (:func:`pnlib.palette_of`; Chang's own
      :func:`~pnlib.baselines.chang_palette`), the target paired with it (:func:`~pnlib.palette.match_palette`,
      as the evaluation pairs Chang's targets) and the photo recoloured: what a user waits for;
    * given P_s and the paired target: the recolouring alone (ours: a :class:`~pnlib.inference.PalettePreview`
      at the photo's own size, FE included, which renders exactly :func:`pnlib.recolor`'s pixels).
    """
    from .baselines import chang_palette, chang_recolor
    from .inference import PalettePreview, palette_of, recolor, target_and_source
    from .palette import match_palette, parse_palette

    model, _ = bench_model(checkpoint)
    img = bench_photo((288, 432))
    rgb = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1).contiguous()
    designer = parse_palette(BENCH_PALETTE)
    runs = {
        "ours, from the photo": lambda: recolor(img, designer, model=model),
        "theirs, from the photo": lambda: chang_recolor(rgb, (P := chang_palette(rgb)), match_palette(P, designer)),
    }
    P_c = chang_palette(rgb)
    T_c = match_palette(P_c, designer)
    P_o = palette_of(img)
    T_o = target_and_source(rgb, designer, model, src=P_o)[0]
    runs["ours, given P_s"] = lambda: PalettePreview(rgb, model, max(rgb.shape[-2:]), P_o).render(T_o)
    runs["theirs, given P_s"] = lambda: chang_recolor(rgb, P_c, T_c)
    times = {k: [] for k in runs}
    with torch_threads(threads):
        for _ in range(rounds):
            for k, fn in runs.items():
                fn()
                for _ in range(repeat):
                    with Stopwatch() as t:
                        fn()
                    times[k].append(t.s)
    med = {k: statistics.median(v) for k, v in times.items()}
    busy = busy_note()
    for how in ("from the photo", "given P_s"):
        o, t = med[f"ours, {how}"], med[f"theirs, {how}"]
        print(f"versus Chang et al. on the same 432x288 photo, {how}: ours {o:.3f} s, theirs {t:.3f} s, "
              f"ours/theirs {o / t:.2f} (target <= 1){busy}")
    return {k.replace(", ", "_").replace(" ", "_"): v for k, v in med.items()}


def _recolor_row(args: str) -> None:
    """One row of :func:`bench_recolor`, in its own process: prints one JSON line (seconds, peak_mb, base_mb)."""
    import json
    import resource

    a = json.loads(args)
    torch.set_num_threads(a["threads"])
    from .inference import recolor

    model, _ = bench_model(a["checkpoint"])
    img = np.load(a["photo"])
    palette = BENCH_PALETTE
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = timeit(lambda: recolor(img, palette, model=model, work_size=a["work_size"]), a["repeat"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024           # kB on Linux -> MB
    print(json.dumps({"seconds": t, "peak_mb": peak, "base_mb": base, "repeat": a["repeat"]}))


def bench_widget(preview: int = 256, repeat: int = 20, threads: int = 2, checkpoint=None, size=(288, 432)
                 ) -> dict:
    """One palette-slider update on a 432×288 (W×H) photo (``size = (H, W)``): RD at the preview size +
    upsample + PNG encode, for the model :func:`bench_model` of ``checkpoint``.

    Prints ``widget update at preview N (2 threads): X ms`` (median of ``repeat`` updates; target <= 30 ms).
    """
    from .widgets import PaletteControl

    with torch_threads(threads):
        model, what = bench_model(checkpoint)
        w = PaletteControl(bench_photo(size), model=model, preview=preview)
        P_t = w.palette_lab_norm()
        ms = 1000 * timeit(lambda: w.render_png(P_t), repeat)
        h, wd = w.engine._net.net_size   # the palette head's RD runs at half the preview size (NET_SCALE)
        print(f"widget update at preview {preview} ({threads} threads): {ms:.1f} ms "
              f"({size[1]}x{size[0]} photo, preview {w.preview_size[1]}x{w.preview_size[0]}, RD at {wd}x{h}, "
              f"{what}; median of {repeat} updates; target <= 30 ms){busy_note()}")
        return {"preview": preview, "ms": ms, "threads": threads, "model": what}
