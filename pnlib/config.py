"""Settings, defined once: the presets, the settings they share, the architecture keys, devices, paths.

A preset is data: one key per line, each with the reason for its value (nanoGPT's config files do the
same). ``get_config(preset, **overrides)`` is the only way code reads them; the command line's
``--preset`` choices are ``PRESET_NAMES``. The lowest layer of pnlib: it imports no other pnlib module.

To add a preset: a new entry of ``PRESETS`` with every key of the others. To add a setting: a line in
``COMMON`` (or in each preset, when it differs between them), with its reason. A setting that changes a
network's shape is also a line of ``ARCH``: ``PaletteNet.from_config`` / ``Discriminator.from_config``
then pass it to the constructor, and checkpoints are compared on it (pnlib.checkpoint).
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch

# --------------------------------------------------------------------------------------------- paths
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Run folders, executed notebooks, caches; never committed. ``PNLIB_RUNS_DIR`` moves it (the tests put
#: every run under a temporary folder with it, so they never read or write the checkout's ``runs/``).
RUNS_DIR = Path(os.environ.get("PNLIB_RUNS_DIR") or REPO_ROOT / "runs").expanduser().resolve()
CACHE_DIR = RUNS_DIR / "cache" / "palettes"   # extracted palettes (pnlib.palette.cached_palette)
FIG_DIR = REPO_ROOT / "figures"               # the committed reference figures (pnlib.viz.save_fig)
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: The checkpoint that ships with the package (written by ``python -m pnlib export``): ours, the palette head.
SHIPPED = Path(__file__).resolve().parent / "checkpoints" / "palettenet.pt"
#: The shipped models by name (``pnlib.load_model("paper")``, the CLI's ``--model``): ours (the default)
#: and the paper's (``head="direct"``), each with a JSON of its training command and data beside it.
SHIPPED_MODELS = {"ours": SHIPPED, "paper": SHIPPED.with_name("paper.pt")}

# ------------------------------------------------------------------------------------------- presets
#: `ci`: seconds (tests, nbval). `quick`: the default, minutes on a 2-core CPU. `full`: paper scale, one GPU.
PRESETS = {
    "ci": dict(
        size=(32, 48),         # tiny: seconds per run; H and W are multiples of 16 (FE's four stride-2 stages)
        batch=4,               # tiny: seconds per run
        steps1=40,             # enough for the E-loss to fall (tests check it)
        steps2=10,             # phase 2 only has to run
        width=8,               # tiny: speed only
        d_width=8,             # D as small as G
        val_every=20,          # two validations in phase 1
        ckpt_every=10,         # several checkpoints, so resume is exercised
        log_every=10,          # a few history rows
        compile=False,         # compiling costs more than these steps take
        anticheat_steps=20,    # notebook 04's discriminator experiment: it only has to run
        anticheat_seeds=1,     # ... one seed per setting
        anticheat_batch=4,     # ... tuples per D step
        grad_size=(64, 96),    # notebook 04, section 6: the second size of the gradient comparison
        ablation_steps=10,     # notebook 04's phase-2 ablation: it only has to run
        eval_size=(64, 96),    # notebook 06: a tiny model only has to run, fast
    ),
    "quick": dict(
        size=(64, 96),         # a laptop CPU trains in minutes; 2/9 of the paper's side
        batch=16,              # small enough for a CPU step of a fraction of a second
        steps1=1800,           # with steps2: about 4 minutes on a 2-core CPU (README)
        steps2=300,            # phase 2: FE frozen, RD and D train
        width=16,              # 1/4 of the paper-scale 64: the shipped checkpoint's width, a few MB
        d_width=16,            # D as wide as G
        val_every=300,         # validation costs seconds: six times a run
        ckpt_every=150,        # a killed run loses at most 150 steps
        log_every=50,          # history rows for the loss plots
        compile=False,         # torch.compile is CUDA-only here (pnlib.train.train_loop)
        lr=1e-3,               # ours: minutes of CPU; lower held-out ΔE00 than 2e-4 (README, "Where this differs")
        anticheat_steps=100,   # notebook 04's discriminator experiment: about a minute on a CPU
        anticheat_seeds=3,     # ... three seeds per setting: the spread tells a difference from noise
        anticheat_batch=8,     # ... tuples per D step
        grad_size=(288, 432),  # notebook 04, section 6: the paper's size (§4.1), against the preset's
        ablation_steps=150,    # notebook 04's phase-2 ablation, three variants: half of phase 2 (steps2), minutes
        eval_size=(288, 432),  # notebook 06 at the paper's size (§4.1)
    ),
    "full": dict(
        size=(288, 432),       # the paper's size (§4.1)
        batch=32,              # for one GPU at width 64
        steps1=6000,           # paper scale, for one GPU
        steps2=1500,           # a quarter of phase 1
        width=64,              # the usual DCGAN / U-net base width (the paper gives none)
        d_width=64,            # D as wide as G
        val_every=1000,        # validation at 288×432 takes a while
        ckpt_every=500,        # a killed run loses at most 500 steps
        log_every=100,         # history rows for the loss plots
        compile=False,         # off: set it True to try torch.compile on a long GPU run
        anticheat_steps=300,   # notebook 04: three times the quick preset's, for a wider D
        anticheat_seeds=3,     # ... three seeds per setting
        anticheat_batch=16,    # ... tuples per D step
        grad_size=(288, 432),  # notebook 04, section 6: the paper's size (the preset's own here)
        ablation_steps=1500,   # notebook 04's phase-2 ablation: as long as phase 2 (steps2)
        eval_size=(288, 432),  # notebook 06 at the paper's size (§4.1)
    ),
}
PRESET_NAMES = tuple(PRESETS)

#: Shared by every preset (a preset's own value wins).
COMMON = dict(
    lr=2e-4,                   # Adam's learning rate (§4.2, from DCGAN)
    betas=(0.5, 0.999),        # Adam's β (§4.2, from DCGAN)
    lam=10.0,                  # λ of eq. (9) (§3.2): L_G = λ L_E + L_Adv
    data="bundled",            # the eight photos that ship with scikit-image, scikit-learn, matplotlib
    seed=0,                    # weights and the sampler's stream
    split_seed=0,              # the train / held-out split of each photo source (pnlib.data.split_pairs),
                               # apart from `seed`: runs with other seeds are scored on the same photos
    train_photos=0,            # 0: every training photo; n: the first n of them in a fixed hashed order,
                               # nested (the 6 are among the 12): the data-scaling experiment (pnlib.scaling)
    device="auto",             # CUDA, else Apple MPS, else CPU (resolve_device)
    crop_scale=(0.25, 1.0),    # ours: random crops of 0.25-1 of the photo: six training photos, not 1,561;
                               # lower held-out ΔE00 than 0.5-1 (README, "Where this differs from the paper")
    jitter=0.3,                # ours: random saturation and gamma per crop (pnlib.data.PairSampler); lower
                               # held-out ΔE00 than none (README, "Where this differs from the paper")
    regions=0.0,               # ours, off (the paper's tuples): the share of training tuples whose target
                               # recolours each palette region by its own hue shift (pnlib.regions).
                               # A global hue shift never tells which region a colour belongs to. Measured
                               # (quick, 1,500 steps, 0.5): adherence at equal L 13 % below the prior's, but
                               # stray edges 3.5x; no setting tried beat the prior on both (pnlib.regions)
    region_radius=2,           # ... majority-vote radius, px at the training size (pnlib.regions.region_weights)
    region_blur=3,             # ... the colour-guided softening of their seams, radius in px (0: hard seams)
    region_eps=1e-2,           # ... and its ε (normalised LAB): larger, softer seams where the photo has no edge
    region_merge=0.0,          # ... entries closer than this share of the palette's mean distance share one angle
                               # (0: every entry its own): no sharp seam is asked for between similar colours
    pasted=0.0,                # ours, off: the share of tuples that paste two crops, each side turned by its own
                               # hue shift (pnlib.regions.PastedPairs); measured in benchmarks/RESULTS.md
    grad_loss=0.0,             # ours, off (the paper's E-loss alone): weight of the E-loss of the ab gradients
                               # (pnlib.losses.gradient_loss), against speckle and bands the target does not have
    head="palette",            # ours, what every preset trains: RD also reads the photo's palette P_s and
                               # predicts soft weights over its entries, each moving the ab plane by its own
                               # similarity transform (pnlib.model.PaletteTransfer). "affine" (ours, earlier)
                               # and the paper's "direct" are one setting away; notebooks 03-04 train the
                               # paper's. How the three compare: README, "Results", and benchmarks/RESULTS.md
)


class Arch(NamedTuple):
    """A setting that changes a network's shape."""
    net: str      # "G" (PaletteNet) or "D" (Discriminator): whose constructor takes it
    arg: str      # the constructor's argument
    legacy: object = None  # its value in checkpoints written before the setting existed (None: always saved)


#: The architecture settings: a checkpoint that differs in one of them cannot be loaded.
ARCH = {
    "width": Arch("G", "width"),
    "d_width": Arch("D", "width"),
    "head": Arch("G", "head", legacy="direct"),  # checkpoints from before the affine head have the paper's
}
ARCH_KEYS = tuple(ARCH)
#: What a checkpoint written before a setting existed used.
LEGACY = {k: a.legacy for k, a in ARCH.items() if a.legacy is not None}


def arch_value(cfg: dict, key: str):
    """``cfg[key]``, or its legacy value when ``cfg`` (an old checkpoint's config) predates the setting."""
    return cfg.get(key, LEGACY.get(key))


def arch_kwargs(cfg: dict, net: str) -> dict:
    """The constructor arguments of network ``net`` ("G" or "D") from a config."""
    return {a.arg: arch_value(cfg, k) for k, a in ARCH.items() if a.net == net}


def get_config(preset: str = "quick", **overrides) -> dict:
    """The full configuration of a preset, with overrides (only known keys), as plain types."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = {"preset": preset, **COMMON, **PRESETS[preset]}
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in cfg:
            raise ValueError(f"unknown setting {k!r}; known: {', '.join(sorted(cfg))}")
        cfg[k] = v
    for k in ("size", "betas", "crop_scale", "eval_size"):
        cfg[k] = list(cfg[k])
    cfg["data"] = str(cfg["data"])
    return cfg


def default_out(preset: str, head: str | None = None) -> Path:
    """A preset's run folder: ``runs/<preset>/``, or ``runs/<preset>-<head>/`` for a head other than the
    preset's own (notebooks 03 and 04 train the paper's ``direct`` head there, beside ours)."""
    if head is None or head == get_config(preset)["head"]:
        return RUNS_DIR / preset
    return RUNS_DIR / f"{preset}-{head}"


# ---------------------------------------------------------------------------- devices, threads, timing
def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch CPU threads, then restore the previous count (None: leave as is)."""
    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


class Stopwatch:
    """Wall time, pnlib's one timing helper: ``with Stopwatch() as t: work()`` then ``t.s`` (seconds of the
    block); outside a ``with``, ``t.s`` is the time since the stopwatch was made (a running clock).

    ``sync``: a device to wait for before each clock reading (CUDA runs asynchronously; other devices:
    nothing to wait for).
    """

    def __init__(self, sync=None):
        self.sync = sync if sync is not None and torch.device(sync).type == "cuda" else None
        self._start()

    def _start(self):
        if self.sync is not None:
            torch.cuda.synchronize(self.sync)
        self._t0, self._t1 = time.perf_counter(), None
        return self

    def __enter__(self):
        return self._start()

    def __exit__(self, *exc):
        if self.sync is not None:
            torch.cuda.synchronize(self.sync)
        self._t1 = time.perf_counter()

    @property
    def s(self) -> float:
        return (self._t1 if self._t1 is not None else time.perf_counter()) - self._t0
