"""Command line: ``python -m pnlib {run-notebooks,site,exercises,train,scaling,recolor,eval,bench,summary,export} ...``.

Every command reports a user error (a missing file, a bad palette, a foreign checkpoint, a NaN loss)
the same way, in :func:`main`: one line ``error: ...`` on stderr, no traceback, exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import PRESET_NAMES

#: The errors a user can fix; anything else is a bug and keeps its traceback.
#: JPEG quality of ``recolor -o OUT.jpg`` unless ``--quality`` says otherwise.
JPEG_QUALITY = 95
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)  # CheckpointMismatch is a ValueError


def _train(a) -> int:
    from .train import train

    overrides = dict(steps1=a.steps1, steps2=a.steps2, batch=a.batch, device=a.device, data=a.data,
                     seed=a.seed, head=a.head, lr=a.lr, train_photos=a.train_photos, split_seed=a.split_seed,
                     size=a.size, width=a.width, regions=a.regions)
    train(a.preset, out=a.out, until_phase=a.until_phase, progress=not a.no_progress, **overrides)
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        # Under torchrun: every rank done and its files written, the group closed, then out at once.
        # Left to the interpreter's teardown, gloo's threads aborted a rank ("terminate called without an
        # active exception", SIGABRT) in 1 run of 6 even after destroy_process_group.
        dist.barrier()
        dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _run_notebooks(a) -> int:
    from .runner import run_notebooks

    results = run_notebooks(a.preset, out=a.out, only=a.only, save_figs=a.save_figs)
    return 0 if all(r["ok"] for r in results) else 1


def _site(a) -> int:
    from .site import build_site

    build_site(a.preset, out=a.out)
    return 0


def _exercises(a) -> int:
    from .exercises import write_notebooks

    written = write_notebooks(a.out, release=a.release, src=a.src)
    what = "stubs" if a.release else "solutions"
    for path, n in written:
        print(f"{path}: {n} exercise{'s' if n != 1 else ''} with {what}")
    return 0


def _scaling(a) -> int:
    from .config import RUNS_DIR
    from .scaling import run_points

    root = Path(a.out) if a.out else RUNS_DIR / "scaling" / (a.name or f"{a.preset}-{a.head}")
    overrides = {k: v for k, v in dict(data=a.data, size=a.size, steps1=a.steps1, steps2=a.steps2,
                                       batch=a.batch, width=a.width, device=a.device).items() if v is not None}
    pts = run_points(a.preset, a.photos, a.seeds, root, jobs=a.jobs, head=a.head, eval_size=a.eval_size, **overrides)
    for r in pts:
        print(f"{r['head']:8s} photos {r['n_photos']:3d} seed {r['seed']}: "
              f"held-out hue shifts {r['held_out']['hue_de00']:6.2f}"
              f"  train {r['train']['hue_de00']:6.2f}  own palette {r['held_out']['own_de00']:6.2f}"
              f"  stray edges {100 * r['held_out']['stray_edges']:5.1f} %")
    print(f"wrote {len(pts)} points under {root}")
    return 0


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


def _recolor(a) -> int:
    """``recolor IMAGE (--palette P | --palette-from OTHER) -o OUT [--checkpoint C] [--work-size N] [--quality Q]``.

    Writes OUT at the photo's size. The network runs at ``--work-size`` (long side, default 1024; 0: the
    full resolution) and its colour transform is upsampled (:func:`pnlib.inference.recolor`), so a 48 MP
    photo fits in 2 GB. JPEG output at ``--quality`` (default 95). User errors (exit 2, see
    :func:`main`): a missing or unreadable image, a bad palette (the message names the entry), a missing
    or foreign checkpoint, an output path that cannot be written, a bad setting.
    """
    from PIL import Image

    from .inference import WORK_SIZE, cached_model, load_pixels, palette_of, recolor
    from .palette import format_palette, parse_palette

    out = Path(a.output).expanduser()
    _check_output(out)
    work = getattr(a, "work_size", WORK_SIZE)
    quality = getattr(a, "quality", JPEG_QUALITY)
    if work is not None and work < 0:
        raise ValueError(f"--work-size must be 0 (full resolution) or a long side in pixels, got {work}")
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be 1-100, got {quality}")
    pixels = load_pixels(a.image)   # uint8 where exact: a 48 MP photo is 144 MB
    palette = palette_of(a.palette_from) if getattr(a, "palette_from", None) else parse_palette(a.palette)
    if getattr(a, "model", None) and getattr(a, "checkpoint", None):
        raise ValueError("give --checkpoint or --model, not both")
    model = cached_model(getattr(a, "checkpoint", None) or getattr(a, "model", None),
                         getattr(a, "device", None) or "auto")
    result = recolor(pixels, palette, model=model, work_size=work or None, match=not a.keep_order)
    del pixels
    options = {"quality": quality} if out.suffix.lower() in (".jpg", ".jpeg") else {}
    try:
        Image.fromarray(result).save(out, **options)
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror or e}") from None
    h, w = result.shape[:2]
    print(f"wrote {out} ({w}x{h}) recolored to {' '.join(format_palette(palette))}")
    return 0


def _export(a) -> int:
    from .checkpoint import export_model

    dest = export_model(a.checkpoint, a.dest, command=a.command, half=a.half)
    print(f"wrote {dest} and {dest.with_suffix('.json')}")
    return 0


def _summary(a) -> int:
    from .config import get_config
    from .model import Discriminator, PaletteNet, summary

    cfg = get_config(a.preset, head=getattr(a, "head", None))
    print(summary(PaletteNet.from_config(cfg), Discriminator.from_config(cfg), size=tuple(a.size)))
    return 0


def _eval(a) -> int:
    """``eval [--checkpoint PATH] [--data bundled|FOLDER[,FOLDER...]] [--size H W] [--out FILE.json]``.

    Prints which checkpoint (and, for a training checkpoint, its step), the Markdown table and the
    runtime; writes the JSON (default ``runs/eval/<checkpoint stem>.json``).
    """
    from .checkpoint import read_checkpoint
    from .config import arch_value
    from .data import data_sources
    from .evaluate import DEFAULT_SIZE, default_checkpoint, evaluate, json_path, save_json, to_markdown
    from .inference import load_model, shipped_path

    if getattr(a, "model", None) and a.checkpoint:
        raise ValueError("give --checkpoint or --model, not both")
    ckpt = shipped_path(a.model) if getattr(a, "model", None) else \
        Path(a.checkpoint).expanduser() if a.checkpoint else default_checkpoint()
    if not ckpt.is_file():
        hint = (" (this pnlib ships no such model)" if getattr(a, "model", None) else "" if a.checkpoint
                else " (no runs/quick/checkpoint.pt and no shipped checkpoint)")
        raise FileNotFoundError(f"no checkpoint at {ckpt}{hint}")
    data = a.data or "bundled"
    data_sources(data)  # a missing folder: a clear error before any work
    state = read_checkpoint(ckpt)
    cfg, step = state.get("config") or {}, state.get("step")
    total = (cfg.get("steps1") or 0) + (cfg.get("steps2") or 0)
    done = "" if step is None or not total else \
        f", step {step} of {total}" + ("" if step >= total else ": training NOT finished")
    print(f"checkpoint: {ckpt} (preset {cfg.get('preset')!r}, width {cfg.get('width')}, "
          f"head {arch_value(cfg, 'head')}{done})")
    model = load_model(ckpt, device=getattr(a, "device", None) or "auto")
    size = tuple(a.size) if a.size else DEFAULT_SIZE
    results = evaluate(model, data=data, size=size, split_seed=int(cfg.get("split_seed", cfg.get("seed", 0)) or 0),
                       checkpoint=str(ckpt), progress=True)
    out = Path(a.out).expanduser() if a.out else json_path(ckpt)
    print()
    print(to_markdown(results))
    print()
    save_json(results, out)
    print(f"eval took {results['timing']['total_s']:.1f} s; wrote {out}")
    return 0


def _bench(a) -> int:
    from . import bench

    return bench.main(a)


def _training_parsers(sub) -> None:
    """``run-notebooks``, ``site``, ``train``: the commands that take a preset (``scaling`` too: its own function)."""
    from .model import HEADS

    r = sub.add_parser("run-notebooks", help="run every notebook headless (papermill) on a preset")
    r.add_argument("--preset", default="quick", choices=PRESET_NAMES)
    r.add_argument("--out", help="folder for the executed notebooks (default runs/<preset>/)")
    r.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 01 03")
    r.add_argument("--save-figs", action="store_true", help="let the notebooks write figures/")
    r.set_defaults(fn=_run_notebooks)

    w = sub.add_parser("site", help="the executed notebooks and benchmarks/RESULTS.md as a static website, offline "
                                    "(runs the notebooks first where runs/<preset>/ has none)")
    w.add_argument("--preset", default="quick", choices=PRESET_NAMES)
    w.add_argument("--out", help="folder for the site (default runs/<preset>/site/)")
    w.set_defaults(fn=_site)

    x = sub.add_parser("exercises", help="write the notebooks with every exercise solved (the instructor's "
                                         "copy), or with the stubs back (--release)")
    x.add_argument("--out", help="folder to write to (default runs/solved/, or runs/released/ with --release)")
    x.add_argument("--release", action="store_true", help="write the stubs between the markers instead")
    x.add_argument("--src", help="notebooks to read (default the repository's notebooks/)")
    x.set_defaults(fn=_exercises)

    t = sub.add_parser("train", help="train PaletteNet (both phases; resumes from the run folder)")
    t.add_argument("--preset", default="quick", choices=PRESET_NAMES)
    t.add_argument("--out", help="run folder (default runs/<preset>/; runs/<preset>-<head>/ for another --head)")
    t.add_argument("--until-phase", type=int, default=2, choices=[1, 2])
    t.add_argument("--steps1", type=int, help="override the preset's phase-1 steps")
    t.add_argument("--steps2", type=int, help="override the preset's phase-2 steps")
    t.add_argument("--batch", type=int, help="override the preset's batch size")
    t.add_argument("--device", help="auto (default), cpu, cuda, mps")
    t.add_argument("--data", help="'bundled' (default), a folder of photos, or several joined by commas "
                                  "(bundled,DIR,DIR)")
    t.add_argument("--seed", type=int, help="weights and sampler (the held-out photos follow --split-seed)")
    t.add_argument("--split-seed", type=int, help="the train / held-out split of each source (default 0)")
    t.add_argument("--train-photos", type=int, metavar="N",
                   help="train on the first N training photos only (nested subsets; default: all)")
    t.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="override the preset's image size")
    t.add_argument("--width", type=int, help="override the preset's network width")
    t.add_argument("--head", choices=HEADS,
                   help="RD's output: 'palette' (default, ours: palette correspondence), 'affine' (ours) "
                        "or 'direct' (the paper's tanh)")
    t.add_argument("--lr", type=float, help="override the preset's Adam learning rate")
    t.add_argument("--regions", type=float, metavar="SHARE",
                   help="ours, not in the paper: this share of the tuples recolours each palette region by its "
                        "own hue shift (default 0: the paper's global hue shifts only)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(fn=_train)


def _scaling_parser(sub) -> None:
    """``scaling``: many training runs, on nested subsets of the training photos."""
    from .model import HEADS

    sc = sub.add_parser("scaling", help="the data-scaling experiment: train on nested subsets of the "
                                        "training photos, score each run on the same held-out photos")
    sc.add_argument("--preset", default="quick", choices=PRESET_NAMES)
    sc.add_argument("--head", default="direct", choices=HEADS, help="default: the paper's (direct)")
    sc.add_argument("--photos", type=int, nargs="+", default=[6, 12, 25, 0],
                    help="numbers of training photos (0: all of them); default 6 12 25 0")
    sc.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    sc.add_argument("--data", help="photo sources, as for train (default the preset's: bundled)")
    sc.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    sc.add_argument("--eval-size", type=int, nargs=2, metavar=("H", "W"),
                    help="score at this size (default the training size); a trained run is loaded, not retrained")
    sc.add_argument("--steps1", type=int)
    sc.add_argument("--steps2", type=int)
    sc.add_argument("--batch", type=int)
    sc.add_argument("--width", type=int)
    sc.add_argument("--device")
    sc.add_argument("--jobs", type=int, default=1, help="points trained at once, each in its own process")
    sc.add_argument("--name", help="folder under runs/scaling/ (default <preset>-<head>)")
    sc.add_argument("--out", help="the folder itself (overrides --name)")
    sc.set_defaults(fn=_scaling)


def _model_parsers(sub) -> None:
    """``recolor``, ``export``, ``summary``: the commands that use or describe a model."""
    from .model import HEADS

    rc = sub.add_parser("recolor", help="recolor a photo to a 6-colour palette")
    rc.add_argument("image", help="input photo (jpg, png, ...)")
    src = rc.add_mutually_exclusive_group(required=True)
    src.add_argument("--palette", help='six colours: "#a,#b,#c,#d,#e,#f" (hex or CSS names)')
    src.add_argument("--palette-from", metavar="OTHER", help="use the palette of another photo")
    rc.add_argument("-o", "--output", required=True, help="output image path (.png, .jpg)")
    rc.add_argument("--checkpoint", help="model checkpoint (default: the shipped one, ours)")
    rc.add_argument("--model", choices=("ours", "paper"), help="a shipped model: ours (palette head, the default) "
                                                              "or the paper's (direct head)")
    rc.add_argument("--device", default="auto")
    rc.add_argument("--work-size", type=int, default=1024, metavar="N",
                    help="long side at which the network runs; its colour transform is upsampled to the "
                         "photo (default 1024; 0: full resolution, slow and memory-hungry on large photos)")
    rc.add_argument("--quality", type=int, default=JPEG_QUALITY, help="JPEG quality (default 95)")
    rc.add_argument("--keep-order", action="store_true",
                    help="colour i of the palette replaces colour i of the photo's own palette (default: "
                         "pair them by least total ΔE00); for the palette head, the shipped model")
    rc.set_defaults(fn=_recolor)

    e = sub.add_parser("export", help="write a small inference checkpoint + JSON from a run's checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("dest")
    e.add_argument("--command", help="the training command to record in the JSON")
    e.add_argument("--half", action="store_true", help="store the weights as float16 (half the file)")
    e.set_defaults(fn=_export)

    s = sub.add_parser("summary", help="parameters and GFLOPs of a preset's networks")
    s.add_argument("--preset", default="full", choices=PRESET_NAMES)
    s.add_argument("--size", type=int, nargs=2, default=[288, 432], metavar=("H", "W"))
    s.add_argument("--head", choices=HEADS, help="RD's output (default the preset's: palette, ours)")
    s.set_defaults(fn=_summary)


def _eval_parsers(sub) -> None:
    """``eval`` and ``bench``: the commands that measure a model."""
    from .model import HEADS

    ev = sub.add_parser("eval", help="evaluate a checkpoint against Chang et al. 2015 (protocols A and B)")
    ev.add_argument("--checkpoint", help="model checkpoint (default: runs/quick/checkpoint.pt, else the shipped one)")
    ev.add_argument("--model", choices=("ours", "paper"), help="a shipped model instead of --checkpoint")
    ev.add_argument("--data", default="bundled", help="'bundled' (default), a folder of photos, or several "
                                                       "joined by commas (bundled,DIR,DIR)")
    ev.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                    help="evaluation size (default 288 432, the paper's)")
    ev.add_argument("--out", help="JSON file for the numbers (default runs/eval/<checkpoint>.json)")
    ev.set_defaults(fn=_eval)

    b = sub.add_parser("bench", help="print speed numbers (colour, sampler, model, baselines, training)")
    b.add_argument("what", nargs="*", default=[], help="subset: color sampler recolor widget chang train")
    b.add_argument("--train", action="store_true", help="also the training throughput benchmark")
    b.add_argument("--preset", choices=PRESET_NAMES, help="train bench: the preset (default full on a GPU, "
                                                          "quick on a CPU)")
    b.add_argument("--head", nargs="*", choices=HEADS, help="train bench: the heads to time (default the "
                                                            "preset's; several: one after the other)")
    b.add_argument("--steps", type=int, help="train bench: timed steps per phase (default 20)")
    b.add_argument("--checkpoint", help="recolor and widget benches: the model to time (default: the shipped one)")
    b.add_argument("--json", help="also write the numbers to this JSON file")
    b.set_defaults(fn=_bench)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pnlib", description="PaletteNet teaching repository")
    sub = p.add_subparsers(dest="cmd", required=True)
    _training_parsers(sub)
    _scaling_parser(sub)
    _model_parsers(sub)
    _eval_parsers(sub)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
