"""Command line: ``python -m pnlib {run-notebooks,train,recolor,eval,bench,summary,export} ...``."""
from __future__ import annotations

import argparse
import sys


def _train(a) -> int:
    from .train import train

    overrides = dict(steps1=a.steps1, steps2=a.steps2, batch=a.batch, device=a.device, data=a.data,
                     seed=a.seed, head=a.head, lr=a.lr)
    train(a.preset, out=a.out, until_phase=a.until_phase, progress=not a.no_progress, **overrides)
    return 0


def _run_notebooks(a) -> int:
    from .runner import run_notebooks

    results = run_notebooks(a.preset, out=a.out, only=a.only, save_figs=a.save_figs)
    return 0 if all(r["ok"] for r in results) else 1


def _recolor(a) -> int:
    from .inference import cli_recolor

    return cli_recolor(a)


def _export(a) -> int:
    from .train import export_model

    dest = export_model(a.checkpoint, a.dest, command=a.command)
    print(f"wrote {dest} and {dest.with_suffix('.json')}")
    return 0


def _summary(a) -> int:
    from .model import Discriminator, PaletteNet, summary
    from .train import get_config

    cfg = get_config(a.preset)
    print(summary(PaletteNet(cfg["width"], cfg["head"]), Discriminator(cfg["d_width"]), size=tuple(a.size)))
    return 0


def _eval(a) -> int:
    from .evaluate import cli_eval

    return cli_eval(a)


def _bench(a) -> int:
    from . import bench

    return bench.main(a)


def main(argv=None) -> int:
    from .model import HEADS

    p = argparse.ArgumentParser(prog="python -m pnlib", description="PaletteNet teaching repository")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run-notebooks", help="run every notebook headless (papermill) on a preset")
    r.add_argument("--preset", default="quick", choices=["ci", "quick", "full"])
    r.add_argument("--out", help="folder for the executed notebooks (default runs/<preset>/)")
    r.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 01 03")
    r.add_argument("--save-figs", action="store_true", help="let the notebooks write figures/")
    r.set_defaults(fn=_run_notebooks)

    t = sub.add_parser("train", help="train PaletteNet (both phases; resumes from the run folder)")
    t.add_argument("--preset", default="quick", choices=["ci", "quick", "full"])
    t.add_argument("--out", help="run folder (default runs/<preset>/)")
    t.add_argument("--until-phase", type=int, default=2, choices=[1, 2])
    t.add_argument("--steps1", type=int, help="override the preset's phase-1 steps")
    t.add_argument("--steps2", type=int, help="override the preset's phase-2 steps")
    t.add_argument("--batch", type=int, help="override the preset's batch size")
    t.add_argument("--device", help="auto (default), cpu, cuda, mps")
    t.add_argument("--data", help="'bundled' (default), a folder of photos, or several joined by commas "
                                  "(bundled,DIR,DIR)")
    t.add_argument("--seed", type=int)
    t.add_argument("--head", choices=list(HEADS),
                   help="RD's output: 'palette' (default, ours: palette correspondence), 'affine' (ours) or 'direct' (the paper's tanh)")
    t.add_argument("--lr", type=float, help="override the preset's Adam learning rate")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(fn=_train)

    rc = sub.add_parser("recolor", help="recolor a photo to a 6-colour palette")
    rc.add_argument("image", help="input photo (jpg, png, ...)")
    src = rc.add_mutually_exclusive_group(required=True)
    src.add_argument("--palette", help='six colours: "#a,#b,#c,#d,#e,#f" (hex or CSS names)')
    src.add_argument("--palette-from", metavar="OTHER", help="use the palette of another photo")
    rc.add_argument("-o", "--output", required=True, help="output image path (.png, .jpg)")
    rc.add_argument("--checkpoint", help="model checkpoint (default: the shipped one)")
    rc.add_argument("--device", default="auto")
    rc.set_defaults(fn=_recolor)

    e = sub.add_parser("export", help="write a small inference checkpoint + JSON from a run's checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("dest")
    e.add_argument("--command", help="the training command to record in the JSON")
    e.set_defaults(fn=_export)

    s = sub.add_parser("summary", help="parameters and GFLOPs of a preset's networks")
    s.add_argument("--preset", default="full", choices=["ci", "quick", "full"])
    s.add_argument("--size", type=int, nargs=2, default=[288, 432], metavar=("H", "W"))
    s.set_defaults(fn=_summary)

    ev = sub.add_parser("eval", help="evaluate a checkpoint against Chang et al. 2015 (protocols A and B)")
    ev.add_argument("--checkpoint", help="model checkpoint (default: runs/quick/checkpoint.pt, else the shipped one)")
    ev.add_argument("--data", default="bundled", help="'bundled' (default), a folder of photos, or several "
                                                       "joined by commas (bundled,DIR,DIR)")
    ev.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="evaluation size (default 288 432, the paper's)")
    ev.add_argument("--out", help="JSON file for the numbers (default runs/eval/<checkpoint>.json)")
    ev.set_defaults(fn=_eval)

    b = sub.add_parser("bench", help="print speed numbers (colour, sampler, model, baselines, training)")
    b.add_argument("what", nargs="*", default=[], help="subset: color sampler recolor widget chang train")
    b.add_argument("--train", action="store_true", help="also the training throughput benchmark")
    b.set_defaults(fn=_bench)

    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
