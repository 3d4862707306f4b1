"""Training PaletteNet: presets, the two phases of Fig. 4, checkpoints, resume, history (§3, §4.2).

Phase 1 (§3.1): pretrain FE and RD together with the E-loss, eq. (3):
    min_{FE,RD} L_E(G(I_s, P_t), Iab_t)
Phase 2 (§3.2): freeze FE; at every iteration update D with L_D, eq. (7), then RD with eq. (9):
    L_G = λ L_E + L_Adv,   λ = 10
Both use Adam, lr 2e-4, β = (0.5, 0.999) (§4.2, from DCGAN); the `quick` preset uses lr 1e-3 (ours, measured).

A run lives in one folder (default ``runs/<preset>/``): ``checkpoint.pt`` (written atomically: a temp
file in the same folder, then ``os.replace``) and ``history.json``. Started again with the same command,
a run continues from its checkpoint, so a killed run loses at most one checkpoint interval. The loop
lives here once; notebooks pass a preset and a ``callback`` for live plots (minGPT's pattern).
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import losses as Ls
from .color import denormalize_lab
from .data import PairSampler, load_split, validation_set
from .metrics import mean_delta_e00
from .model import Discriminator, PaletteNet

REPO_ROOT = Path(__file__).resolve().parent.parent
FORMAT = "pnlib-checkpoint/1"

#: The presets, defined once. `ci`: seconds (tests, nbval). `quick`: the default, minutes on a 2-core
#: CPU. `full`: paper scale (288×432, §4.1) for one GPU.
PRESETS = {
    "ci": dict(size=(32, 48), batch=4, steps1=40, steps2=10, width=8, d_width=8,
               val_every=20, ckpt_every=10, log_every=10, compile=False),
    "quick": dict(size=(64, 96), batch=16, steps1=1800, steps2=300, width=16, d_width=16,
                  val_every=300, ckpt_every=150, log_every=50, compile=False, lr=1e-3),
    "full": dict(size=(288, 432), batch=32, steps1=6000, steps2=1500, width=64, d_width=64,
                 val_every=1000, ckpt_every=500, log_every=100, compile=False),
}
#: Shared by every preset (§4.2).
COMMON = dict(lr=2e-4, betas=(0.5, 0.999), lam=Ls.LAMBDA, data="bundled", seed=0, device="auto",
              crop_scale=(0.25, 1.0), jitter=0.3, head="palette")
# crop_scale and jitter (random saturation and gamma of each crop, pnlib.data.PairSampler) are ours,
# not the paper's: with 6 training photos instead of 1,561 they lower the held-out ΔE00 (quick preset,
# 900 steps: 12.2 with crops of 0.5-1 and no jitter; 11.4 with crops of 0.25-1; 11.7 with jitter 0.3).
# head="palette" (pnlib.model.RecoloringDecoder) is ours: RD also reads the source palette P_s and
# predicts soft weights over its entries, each entry moving the ab plane by its own similarity transform.
# Held-out bundled photos, 288x432: hue-shift dE00 1.7 against 4.8 for Chang et al. and 9.5 for the affine
# head; the photo's own palette gives it back exactly (benchmarks/RESULTS.md).
# head="affine" (pnlib.model.RecoloringDecoder) is ours too; head="direct" trains the paper's RD. Quick
# preset, 900 steps at lr 1e-3: held-out ΔE00 9.8 (affine) against 11.0 (direct); at the paper's lr 2e-4,
# 11.6 (direct). The quick preset's lr 1e-3 is ours; the full preset keeps the paper's 2e-4.
#: Keys that change the networks' shapes: a checkpoint that differs in one of them cannot be loaded.
ARCH_KEYS = ("width", "d_width", "head")


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
    for k in ("size", "betas", "crop_scale"):
        cfg[k] = list(cfg[k])
    cfg["data"] = str(cfg["data"])
    return cfg


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA, else Apple MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def default_out(preset: str) -> Path:
    return REPO_ROOT / "runs" / preset


class CheckpointMismatch(ValueError):
    """A checkpoint from another preset or architecture."""


@dataclass
class Run:
    """Everything a training run holds; what `checkpoint.pt` saves and restores."""
    cfg: dict
    out: Path
    device: torch.device
    G: PaletteNet
    D: Discriminator
    opt_g: torch.optim.Optimizer    # phase 1: FE + RD
    opt_rd: torch.optim.Optimizer   # phase 2: RD only (FE frozen)
    opt_d: torch.optim.Optimizer
    sampler: PairSampler
    val: dict
    step: int = 0
    history: list = field(default_factory=list)
    rank: int = 0   # multi-process training (torchrun): this process's rank, and how many there are
    world: int = 1
    # What the steps call: the modules themselves, or their DistributedDataParallel wrappers (one per
    # trained subnet, so the frozen FE of phase 2 is never wrapped and no two wrappers share a weight).
    enc: object = None
    dec: object = None
    disc: object = None

    def __post_init__(self):
        self.enc, self.dec, self.disc = self.G.encoder, self.G.decoder, self.D

    @property
    def total_steps(self) -> int:
        return self.cfg["steps1"] + self.cfg["steps2"]

    @property
    def phase(self) -> int:
        return 1 if self.step < self.cfg["steps1"] else 2


def _adam(params, cfg, device):
    fused = device.type == "cuda"  # one kernel for the whole update on a GPU
    return torch.optim.Adam(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), fused=fused)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) under torchrun; starts the process group once. (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def build_run(cfg: dict, out: Path) -> Run:
    """Networks, optimisers, the sampler over the training photos and the fixed validation set.

    Under ``torchrun --nproc_per_node=N`` each process (rank) samples its own stream of tuples, FE, RD
    and D are wrapped in DistributedDataParallel (gradients averaged across ranks), and rank 0 alone
    validates and writes checkpoints.
    """
    rank, world, local = _distributed()
    device = resolve_device(cfg["device"])
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    torch.manual_seed(cfg["seed"])  # the same initial weights on every rank
    G = PaletteNet(cfg["width"], cfg["head"]).to(device)
    D = Discriminator(cfg["d_width"]).to(device)
    train_pairs, val_pairs = load_split(cfg["data"], seed=cfg["seed"])
    sampler = PairSampler(train_pairs, size=tuple(cfg["size"]), batch_size=cfg["batch"], device=device,
                          seed=cfg["seed"] + 1000 * rank, scale=tuple(cfg["crop_scale"]), jitter=cfg["jitter"],
                          source_palette=G.uses_source_palette)
    val = validation_set(val_pairs, size=tuple(cfg["size"]), device=device)
    run = Run(cfg, Path(out), device, G, D, _adam(G.parameters(), cfg, device),
              _adam(G.decoder.parameters(), cfg, device), _adam(D.parameters(), cfg, device),
              sampler, val, rank=rank, world=world)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        run.enc, run.dec, run.disc = (DDP(m, device_ids=ids) for m in (G.encoder, G.decoder, D))
    return run


# ----------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_path(out) -> Path:
    return Path(out) / "checkpoint.pt"


def save_checkpoint(run: Run) -> Path:
    """Atomic: write a temp file in the same folder, then os.replace (a kill never leaves half a file)."""
    run.out.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(run.out)
    state = {
        "format": FORMAT, "config": run.cfg, "step": run.step, "history": run.history,
        "G": run.G.state_dict(), "D": run.D.state_dict(),
        "opt_g": run.opt_g.state_dict(), "opt_rd": run.opt_rd.state_dict(), "opt_d": run.opt_d.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "sampler": run.sampler.state_dict()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    write_history(run)
    return path


def phase1_path(out) -> Path:
    return Path(out) / "phase1.pt"


def save_phase1(run: Run) -> None:
    """G at the end of phase 1, kept so notebook 04 can compare before / after phase 2."""
    tmp = phase1_path(run.out).with_suffix(".tmp")
    torch.save({"format": FORMAT, "config": run.cfg, "step": run.step, "G": run.G.state_dict(),
                "history": run.history}, tmp)
    os.replace(tmp, phase1_path(run.out))


def write_history(run: Run) -> None:
    tmp = run.out / "history.json.tmp"
    tmp.write_text(json.dumps({"config": run.cfg, "history": run.history}, indent=1))
    os.replace(tmp, run.out / "history.json")


def read_checkpoint(path) -> dict:
    """torch.load(weights_only=True) with clear errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, a pickle of something else, not a torch file at all
        raise CheckpointMismatch(f"{path} is not a readable pnlib checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointMismatch(f"{path} is not a pnlib checkpoint (expected format {FORMAT!r})")
    return state


#: What a checkpoint written before a setting existed used (the paper's RD head).
LEGACY = {"head": "direct"}


def config_differences(saved: dict, wanted: dict, keys=("preset",) + ARCH_KEYS) -> list[str]:
    def get(cfg, k):
        return cfg.get(k, LEGACY.get(k))
    return [f"{k}: checkpoint has {get(saved, k)!r}, this run wants {get(wanted, k)!r}"
            for k in keys if get(saved, k) != get(wanted, k)]


def restore(run: Run, state: dict) -> None:
    """Load a checkpoint into a run, refusing one of another preset or architecture."""
    diff = config_differences(state["config"], run.cfg)
    if diff:
        raise CheckpointMismatch(
            f"checkpoint {checkpoint_path(run.out)} does not match this run: " + "; ".join(diff)
            + ". Use another --out folder, or delete the checkpoint to start over.")
    run.G.load_state_dict(state["G"])
    run.D.load_state_dict(state["D"])
    for name in ("opt_g", "opt_rd", "opt_d"):
        getattr(run, name).load_state_dict(state[name])
    torch.set_rng_state(state["rng"]["torch"])
    run.sampler.load_state_dict(state["rng"]["sampler"])
    if run.rank:  # the checkpoint holds rank 0's stream; the others draw their own again
        run.sampler.generator.manual_seed(run.cfg["seed"] + 1000 * run.rank + int(state["step"]))
    run.step, run.history = int(state["step"]), list(state["history"])


# ----------------------------------------------------------------------------------------------------
# One iteration of each phase


def enable_tf32(device: torch.device) -> None:
    """TF32 for the fp32 matmuls and convolutions left outside bf16 autocast (CUDA only)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _autocast(device: torch.device):
    # bf16 for the networks on CUDA (same range as fp32: no loss scaling); the losses cast to fp32.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def phase1_step(run: Run, b: dict) -> dict:
    """§3.1: one Adam step of FE + RD on L_E(G(I_s, P_t), Iab_t), eq. (3)."""
    with _autocast(run.device):
        ab = run.dec(run.enc(b["I_s"]), b["P_t"], b["I_s"], b.get("P_s"))  # G(I_s, P_t), eq. (2)
    loss = Ls.e_loss(ab.float(), b["I_t"][:, 1:])
    run.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    run.opt_g.step()
    return {"loss_e": loss.detach()}


def freeze_encoder(G: PaletteNet) -> None:
    """Phase 2 (Fig. 4): FE's parameters are fixed; only RD (and D) learn."""
    G.encoder.eval().requires_grad_(False)


def phase2_step(run: Run, b: dict, with_accuracy: bool = False) -> dict:
    """§3.2: D's step on L_D (eq. 7), then RD's step on L_G = λ L_E + L_Adv (eq. 9); FE frozen."""
    G, D = run.G, run.D
    with torch.no_grad(), _autocast(run.device):
        c = G.encoder(b["I_s"])
    with _autocast(run.device):
        ab = run.dec(c, b["P_t"], b["I_s"], b.get("P_s"))
    I_hat = torch.cat([b["I_s"][:, :1], ab.to(b["I_s"].dtype)], 1)  # Î_t = [I^L_s, Îab_t]

    with _autocast(run.device):
        terms = Ls.discriminator_terms(run.disc, I_hat, b["P_t"], b["I_o"], b["P_o"])
    loss_d = Ls.terms_loss(terms)  # eq. (7); the terms are kept for D's accuracy
    run.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    run.opt_d.step()

    loss_e = Ls.e_loss(ab.float(), b["I_t"][:, 1:])
    with _autocast(run.device):
        loss_adv = Ls.adversarial_loss(D, I_hat, b["P_t"])
    loss_g = Ls.generator_loss(loss_e, loss_adv, run.cfg["lam"])
    run.opt_rd.zero_grad(set_to_none=True)
    D.requires_grad_(False)  # G's step must not leave gradients on D
    loss_g.backward()
    D.requires_grad_(True)
    run.opt_rd.step()
    out = {"loss_e": loss_e.detach(), "loss_adv": loss_adv.detach(), "loss_g": loss_g.detach(),
           "loss_d": loss_d.detach()}
    if with_accuracy:
        out.update({f"acc_{k}": v for k, v in Ls.discriminator_accuracy(terms).items()})
    return out


# ----------------------------------------------------------------------------------------------------
# Validation


@torch.no_grad()
def validate(G: PaletteNet, val: dict, batch: int = 36) -> float:
    """Mean ΔE00 (display sRGB) between Î_t and the ground truth I_t over the fixed validation tuples."""
    was_training = G.training
    G.eval()
    P_s = val["P_s"] if G.uses_source_palette else None
    preds = [G.recolor_lab(val["I_s"][i:i + batch], val["P_t"][i:i + batch],
                           None if P_s is None else P_s[i:i + batch]).float()
             for i in range(0, len(val["I_s"]), batch)]
    G.train(was_training)
    return mean_delta_e00(denormalize_lab(torch.cat(preds)).cpu(), denormalize_lab(val["I_t"]).cpu())


def identity_delta_e00(val: dict) -> float:
    """ΔE00 of the unchanged source against I_t: the bar any recoloring must beat."""
    return mean_delta_e00(denormalize_lab(val["I_s"]).cpu(), denormalize_lab(val["I_t"]).cpu())


# ----------------------------------------------------------------------------------------------------
# The loop


def _progress(total, initial, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled, desc="PaletteNet", unit="step",
                dynamic_ncols=True)


def _check_finite(pending: list, first_step: int, run: Run) -> dict:
    """Means of the pending per-step losses; one host sync per interval, not per step.

    A NaN or inf stops the run naming the first bad step and loss; the checkpoint on disk (the last
    good one) is kept untouched.
    """
    keys = pending[0].keys()
    stacked = {k: torch.stack([torch.as_tensor(p[k], dtype=torch.float32) for p in pending]).cpu() for k in keys}
    for i in range(len(pending)):
        for k in keys:
            v = float(stacked[k][i])
            if not math.isfinite(v):
                ck = checkpoint_path(run.out)
                raise FloatingPointError(
                    f"{k} is {v} at step {first_step + i + 1} (phase {run.phase}); training stopped. "
                    f"The last good checkpoint is kept: {ck if ck.exists() else 'none written yet'}")
    return {k: float(v.mean()) for k, v in stacked.items()}


def train_loop(run: Run, until_phase: int = 2, callback=None, progress: bool = True) -> Run:
    """Run phase 1 then phase 2 up to ``until_phase``, validating, logging and checkpointing."""
    cfg = run.cfg
    target = cfg["steps1"] if until_phase == 1 else run.total_steps
    enable_tf32(run.device)
    identity = identity_delta_e00(run.val)
    if cfg.get("compile") and run.device.type == "cuda":
        run.G.encoder.compile()
        run.G.decoder.compile()
    bar = _progress(target, run.step, progress and run.rank == 0)
    pending, t0 = [], time.perf_counter()
    interval_start = run.step
    while run.step < target:
        if run.phase == 2:
            freeze_encoder(run.G)
        b = run.sampler.sample(with_o=run.phase == 2)  # I_o, P_o only feed D (phase 2)
        log_now = (run.step + 1) % cfg["log_every"] == 0
        losses = phase1_step(run, b) if run.phase == 1 else phase2_step(run, b, with_accuracy=log_now)
        accuracy = {k: losses.pop(k) for k in list(losses) if k.startswith("acc_")}
        pending.append(losses)
        run.step += 1
        bar.update(1)
        end_of_phase = run.step in (cfg["steps1"], run.total_steps, target)
        val_now = run.step % cfg["val_every"] == 0 or end_of_phase
        ckpt_now = run.step % cfg["ckpt_every"] == 0 or end_of_phase
        if log_now or val_now or ckpt_now:
            row = {"step": run.step, "phase": 1 if run.step <= cfg["steps1"] else 2,
                   **_check_finite(pending, interval_start, run), **accuracy}
            pending, interval_start = [], run.step
            if val_now and run.rank == 0:
                row.update(val_de00=validate(run.G, run.val), identity_de00=identity)
            row["elapsed_s"] = round(time.perf_counter() - t0, 2)
            run.history.append(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("loss_e", "loss_d", "val_de00")})
            if callback is not None:
                callback(row, run)
        if ckpt_now:
            check_ranks_in_sync(run)
            if run.rank == 0:
                save_checkpoint(run)
        if run.step == cfg["steps1"] and run.rank == 0:
            save_phase1(run)
    bar.close()
    if run.world > 1 and run.rank == 0:
        print(f"DDP: {run.world} ranks, weights identical at step {run.step}")
    return run


def check_ranks_in_sync(run: Run) -> None:
    """Under DDP every rank must hold the same G and D; compare fingerprints of all weights, or stop."""
    if run.world == 1:
        return
    import torch.distributed as dist

    params = list(run.G.parameters()) + list(run.D.parameters())
    mine = torch.stack([p.detach().double().sum() for p in params] + [p.detach().double().square().sum() for p in params])
    everyone = [torch.empty_like(mine) for _ in range(run.world)]
    dist.all_gather(everyone, mine)
    for r, theirs in enumerate(everyone):
        if not torch.equal(theirs, everyone[0]):
            raise RuntimeError(f"DDP: rank {r}'s weights differ from rank 0's at step {run.step}")


def train(preset: str = "quick", out=None, until_phase: int = 2, callback=None, progress: bool = True,
          resume: bool = True, **overrides):
    """Train (or resume) a run; returns ``(G, history)``. Prints whether it resumed or started fresh."""
    cfg = get_config(preset, **overrides)
    out = Path(out) if out is not None else default_out(preset)
    run = build_run(cfg, out)
    ck = checkpoint_path(out)
    if resume and ck.exists():
        restore(run, read_checkpoint(ck))
        print(f"resuming {ck} from step {run.step} of {run.total_steps}")
    else:
        print(f"training preset {preset!r} from scratch on {run.device} -> {out}")
    train_loop(run, until_phase=until_phase, callback=callback, progress=progress)
    return run.G, run.history


def load_or_train(preset: str = "quick", out=None, until_phase: int = 2, callback=None,
                  progress: bool = True, **overrides):
    """Load a finished, matching checkpoint; otherwise train (resuming a partial one). Says which.

    ``until_phase=1`` stops after the E-loss pretraining (notebook 03); ``2`` runs both (notebook 04).
    Returns ``(G, history)`` with G in eval mode on the run's device.
    """
    cfg = get_config(preset, **overrides)
    out = Path(out) if out is not None else default_out(preset)
    ck = checkpoint_path(out)
    need = cfg["steps1"] if until_phase == 1 else cfg["steps1"] + cfg["steps2"]
    for path in ((phase1_path(out), ck) if until_phase == 1 else (ck,)):
        if not path.exists():
            continue
        state = read_checkpoint(path)
        diff = config_differences(state["config"], cfg)
        if diff:
            raise CheckpointMismatch(f"checkpoint {path} does not match preset {preset!r}: " + "; ".join(diff))
        if state["step"] >= need:
            G = PaletteNet(cfg["width"], cfg["head"]).to(resolve_device(cfg["device"]))
            G.load_state_dict(state["G"])
            print(f"loaded {path} (step {state['step']}: phase {until_phase} done); not training")
            return G.eval(), [r for r in state["history"] if r["step"] <= need]
    G, history = train(preset, out, until_phase, callback, progress, **overrides)
    return G.eval(), history


def export_model(ckpt, dest, command: str | None = None) -> Path:
    """Write a small inference-only checkpoint (G's weights + config) and a JSON beside it.

    The JSON records what a reader needs to trust the weights: the command, preset, data, steps,
    training time, hardware and the final validation ΔE00 (with the identity's for reference).
    """
    state = read_checkpoint(ckpt)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    small = {"format": FORMAT, "config": state["config"], "step": state["step"], "G": state["G"],
             "history": state["history"][-1:]}
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save(small, tmp)
    os.replace(tmp, dest)
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
        "size_bytes": dest.stat().st_size,
    }
    dest.with_suffix(".json").write_text(json.dumps(info, indent=1))
    return dest


def _segment_ends(history: list) -> list:
    """elapsed_s restarts at 0 when a run resumes: the last row of each segment holds its time."""
    ends = []
    for i, r in enumerate(history):
        nxt = history[i + 1] if i + 1 < len(history) else None
        if nxt is None or nxt.get("elapsed_s", 0) < r.get("elapsed_s", 0):
            ends.append(r)
    return ends


def plot_history(history: list, ax=None):
    """Loss curves and validation ΔE00 (with the identity baseline) from a history list."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.5))
    for key, label in (("loss_e", "L_E (eq. 3)"), ("loss_d", "L_D (eq. 7)"), ("loss_adv", "L_Adv (eq. 8)")):
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax[0].plot(*zip(*pts), label=label)
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_title("training losses")
    ax[0].legend()
    val = [(r["step"], r["val_de00"], r["identity_de00"]) for r in history if "val_de00" in r]
    if val:
        s, v, idn = zip(*val)
        ax[1].plot(s, v, "o-", label="PaletteNet")
        ax[1].plot(s, idn, "--", color="gray", label="identity (unchanged source)")
        ax[1].legend()
    p2 = next((r["step"] for r in history if r["phase"] == 2), None)
    for a in ax:
        if p2 is not None:
            a.axvline(p2, color="k", lw=0.8, ls=":")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("mean ΔE00")
    ax[1].set_title("validation ΔE00 (held-out photos)")
    return ax


class LivePlot:
    """A ``callback`` for train / load_or_train that redraws :func:`plot_history` in a notebook."""

    def __init__(self, every: int = 1):
        self.rows, self.every, self.handle, self.calls = [], every, None, 0

    def __call__(self, row: dict, run: Run) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.rows, self.calls = list(run.history), self.calls + 1
        if self.calls % self.every:
            return
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
        plot_history(self.rows, ax)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def anticheat_experiment(G: PaletteNet, sampler: PairSampler, steps: int = 150, d_width: int = 16,
                         anticheat: bool = True, eval_every: int = 10, seed: int = 0, lr: float = 2e-4) -> list:
    """Train a fresh D for ``steps`` on a frozen G, with or without the anti-cheat terms of eq. (6).

    Every ``eval_every`` steps, on a fresh batch, records how often D calls each pair "real" (share of
    patches with logit > 0): the real pair (I_o, P_o), the generated (Î_t, P_t), the anti-cheat pairs
    (I_o, P_t) and (Î_t, P_o), and the cheat test ``real_Io_Pother``: a real photo with the untouched
    palette of *another* real photo. Both are genuine; only their pairing is wrong. A D that memorised
    the real photos and palettes instead of checking that they belong together calls it real.
    """
    torch.manual_seed(seed)
    device = next(G.parameters()).device
    D = Discriminator(d_width).to(device)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    G.eval()
    rows = []
    for step in range(steps + 1):
        b = sampler.sample()
        with torch.no_grad():
            I_hat = G.recolor_lab(b["I_s"], b["P_t"], b.get("P_s"))
        if step % eval_every == 0:
            with torch.no_grad():
                terms = Ls.discriminator_terms(D, I_hat, b["P_t"], b["I_o"], b["P_o"], anticheat=True)
                other = b["o"].roll(1) != b["o"]  # rows whose rolled palette is another photo's
                cheat = D(b["I_o"], b["P_o"].roll(1, 0))[other]
            rows.append({"step": step, **{f"real_{k}": float((v > 0).float().mean()) for k, v in terms.items()},
                         "real_Io_Pother": float((cheat > 0).float().mean()) if other.any() else float("nan")})
        if step == steps:
            break
        loss = Ls.discriminator_loss(D, I_hat, b["P_t"], b["I_o"], b["P_o"], anticheat=anticheat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return rows
