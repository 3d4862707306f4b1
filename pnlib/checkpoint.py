"""Checkpoints: the format, atomic writes, reading, mismatch checks, old checkpoints, export.

A checkpoint is a dict saved by ``torch.save`` and read with ``weights_only=True``, always built by
:func:`checkpoint_state`: ``format`` (:data:`FORMAT`, with its version), ``model_args`` (PaletteNet's
constructor arguments, so the network is rebuilt as ``PaletteNet(**model_args)``, as nanoGPT stores its
model's), ``config`` (plain types, :func:`pnlib.config.get_config`), ``step``, ``history`` and ``G``
(PaletteNet's state dict); a training run's ``checkpoint.pt`` also holds ``D``, the three optimisers
and the random state (pnlib.train). Every file is written atomically: a temporary file in the same
folder, then ``os.replace``, so a kill never leaves half a file.

Older files still load (:data:`READABLE_FORMATS`): version 1 has no ``model_args`` (the shipped
checkpoint is one), and the network is built from its config; a config written before an architecture
setting existed lacks its key, which counts as the setting's legacy value (:data:`pnlib.config.LEGACY`:
the paper's ``direct`` head). Used by both training and inference; it never imports the training loop.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch

from .config import ARCH_KEYS, arch_kwargs, arch_value
from .model import HEADS, PaletteNet

#: The format written now: version 2 stores ``model_args``.
FORMAT = "pnlib-checkpoint/2"
#: Every format this pnlib reads; version 1 (no ``model_args``) is built from its config.
READABLE_FORMATS = ("pnlib-checkpoint/1", FORMAT)


class CheckpointMismatch(ValueError):
    """A checkpoint from another preset or architecture, or a file that is not a pnlib checkpoint."""


def checkpoint_path(out) -> Path:
    return Path(out) / "checkpoint.pt"


def phase1_path(out) -> Path:
    return Path(out) / "phase1.pt"


def atomic_save(state: dict, path) -> Path:
    """``torch.save(state, path)`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def atomic_write_text(text: str, path) -> Path:
    """Write a text file through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_checkpoint(path) -> dict:
    """torch.load(weights_only=True) with clear errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, a pickle of something else, not a torch file at all
        raise CheckpointMismatch(f"{path} is not a readable pnlib checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise CheckpointMismatch(f"{path} is not a pnlib checkpoint (expected format "
                                 f"{' or '.join(map(repr, READABLE_FORMATS))})")
    return state


def checkpoint_state(model_args: dict, weights: dict, cfg: dict, step: int, history: list, **extra) -> dict:
    """The dict every pnlib checkpoint saves (training's checkpoint and phase-1 files, export).

    ``model_args``: PaletteNet's constructor arguments (:attr:`pnlib.model.PaletteNet.model_args`);
    ``weights``: its state dict; ``cfg``: the run's config; ``extra``: what a training run adds (D, the
    optimisers, the random state).
    """
    return {"format": FORMAT, "model_args": _checked_args(dict(model_args), "model_args"), "config": cfg,
            "step": int(step), "history": list(history), "G": weights, **extra}


def _checked_args(args: dict, where) -> dict:
    """``args`` when they are PaletteNet's constructor arguments (a width and a known head)."""
    if set(args) != {"width", "head"} or not isinstance(args["width"], int) or args["width"] < 1:
        raise CheckpointMismatch(f"{where}: model_args must be a positive int width and a head, got {args!r}")
    if args["head"] not in HEADS:
        raise CheckpointMismatch(f"{where}: unknown head {args['head']!r} (this pnlib knows {', '.join(HEADS)})")
    return args


def model_args_of(state: dict, path) -> dict:
    """PaletteNet's constructor arguments for a checkpoint: its ``model_args``, or for a version-1 file
    (no ``model_args``) the architecture settings of its config (legacy values filled in)."""
    if "model_args" in state:
        return _checked_args(dict(state["model_args"]), path)
    cfg = state.get("config")
    if not isinstance(cfg, dict) or "width" not in cfg:
        raise CheckpointMismatch(f"{path} is not a pnlib model checkpoint (no model_args, no config width)")
    args = arch_kwargs(cfg, "G")
    return _checked_args({**args, "width": int(args["width"])}, path)


def config_differences(saved: dict, wanted: dict, keys=("preset",) + ARCH_KEYS) -> list[str]:
    """One line per setting in which a checkpoint's config and a run's differ (legacy values filled in)."""
    return [f"{k}: checkpoint has {arch_value(saved, k)!r}, this run wants {arch_value(wanted, k)!r}"
            for k in keys if arch_value(saved, k) != arch_value(wanted, k)]


#: Settings that change what training learns: a run folder trained with other values cannot stand in
#: for a run that asks for these (``load_or_train(..., lr=2e-4)`` must not load a run trained at 1e-3).
#: Compared where the checkpoint records them. The step counts are not here: more steps resume a run.
TRAINING_KEYS = ("lr", "betas", "lam", "batch", "size", "crop_scale", "jitter", "data", "seed", "split_seed",
                 "train_photos", "regions", "region_radius", "region_blur",
                 "region_eps", "region_merge", "grad_loss", "pasted")


def check_matches(state: dict, cfg: dict, what: str) -> None:
    """Raise :class:`CheckpointMismatch` naming each difference when ``state`` cannot serve ``cfg``:
    the preset, the architecture (:data:`~pnlib.config.ARCH`) and the :data:`TRAINING_KEYS` it records.

    ``what``: the start of the message, e.g. "checkpoint runs/ci/checkpoint.pt does not match this run".
    """
    saved = state["config"]
    diff = config_differences(saved, cfg) + config_differences(saved, cfg, [k for k in TRAINING_KEYS if k in saved])
    if diff:
        raise CheckpointMismatch(f"{what}: " + "; ".join(diff))


def generator_from_state(state: dict, path) -> PaletteNet:
    """PaletteNet with a checkpoint's weights (on the CPU, train mode), built from :func:`model_args_of`.

    Raises :class:`CheckpointMismatch` for a file without model arguments or G's weights, an unknown
    head or weights that do not fit. Weights saved by a torch.compile'd module (``_orig_mod.`` names)
    load too.
    """
    if not isinstance(state.get("G"), dict):
        raise CheckpointMismatch(f"{path} is not a pnlib model checkpoint (no G weights)")
    args = model_args_of(state, path)
    G = PaletteNet(**args)
    weights = {k.replace("_orig_mod.", ""): v for k, v in state["G"].items()}
    try:
        G.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointMismatch(f"{path}: the weights do not fit PaletteNet({args['width']}, {args['head']!r}): "
                                 f"{e}") from None
    return G


def export_model(ckpt, dest, command: str | None = None, half: bool = False) -> Path:
    """Write a small inference-only checkpoint (:func:`checkpoint_state`: G's weights, its model_args
    and config; any readable checkpoint in, the current format out) and a JSON beside it.

    ``half``: store the weights as float16 (half the bytes; they load back into float32 networks,
    rounded to float16's 11 significant bits), for a width-64 network to stay a small file.

    The JSON records what a reader needs to trust the weights: the command, preset, data, steps,
    training time, hardware and the final validation ΔE00 (with the identity's for reference).
    """
    state = read_checkpoint(ckpt)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.half() if half and v.is_floating_point() else v for k, v in state["G"].items()}
    atomic_save(checkpoint_state(model_args_of(state, ckpt), weights, state["config"], state["step"],
                                 state["history"][-1:]), dest)
    hist = state["history"]
    last_val = next((r for r in reversed(hist) if "val_de00" in r), {})
    info = {
        "command": command or " ".join([Path(sys.executable).name, "-m", "pnlib"] + sys.argv[1:]),
        "preset": state["config"]["preset"], "config": state["config"], "data": state["config"]["data"],
        "steps": state["step"], "train_time_s": sum(r.get("elapsed_s", 0) for r in _segment_ends(hist)),
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "torch": torch.__version__},
        "val_de00": last_val.get("val_de00"), "identity_de00": last_val.get("identity_de00"),
        "data_sources": data_provenance(state["config"]["data"]),
        "size_bytes": dest.stat().st_size, "weights_dtype": "float16" if half else "float32",
    }
    dest.with_suffix(".json").write_text(json.dumps(info, indent=1))
    return dest


def data_provenance(data: str) -> list[dict]:
    """Each photo source of a run's ``data`` setting: its name, path and number of image files.

    The bundled photos ship with scikit-image, scikit-learn and matplotlib; a folder is named by its
    last path component, as training names its photos (README, "More photos" lists the known ones).
    """
    from .photos import BUNDLED_NAMES, IMAGE_EXTENSIONS

    out = []
    for src in (s.strip() for s in str(data).split(",") if s.strip()):
        if src == "bundled":
            out.append({"name": "bundled", "photos": len(BUNDLED_NAMES),
                        "what": "scikit-image, scikit-learn and matplotlib sample photos"})
            continue
        root = Path(src).expanduser()
        n = sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS) if root.is_dir() else None
        out.append({"name": root.name, "path": str(root), "photos": n})
    return out


def _segment_ends(history: list) -> list:
    """elapsed_s restarts at 0 when a run resumes: the last row of each segment holds its time."""
    ends = []
    for i, r in enumerate(history):
        nxt = history[i + 1] if i + 1 < len(history) else None
        if nxt is None or nxt.get("elapsed_s", 0) < r.get("elapsed_s", 0):
            ends.append(r)
    return ends
