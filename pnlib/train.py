"""Training PaletteNet: the two phases of Fig. 4, resume, history (§3, §4.2).

Phase 1 (§3.1): pretrain FE and RD together with the E-loss, eq. (3):
    min_{FE,RD} L_E(G(I_s, P_t), Iab_t)
Phase 2 (§3.2): freeze FE; at every iteration update D with L_D, eq. (7), then RD with eq. (9):
    L_G = λ L_E + L_Adv,   λ = 10
Both use Adam, lr 2e-4, β = (0.5, 0.999) (§4.2, from DCGAN); the `quick` preset uses lr 1e-3 (ours,
measured). The presets and their settings live in :mod:`pnlib.config`, the checkpoint format in
:mod:`pnlib.checkpoint`.

A run lives in one folder (default ``runs/<preset>/``): ``checkpoint.pt`` (written atomically: a temp
file in the same folder, then ``os.replace``) and ``history.json``. Started again with the same command,
a run continues from its checkpoint, so a killed run loses at most one checkpoint interval. The loop
lives here once; notebooks pass a preset and a ``callback`` for live plots (minGPT's pattern).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import losses as Ls
from .checkpoint import (
    CheckpointMismatch,
    atomic_save,
    atomic_write_text,
    check_matches,
    checkpoint_path,
    checkpoint_state,
    generator_from_state,
    phase1_path,
    read_checkpoint,
)
from .color import denormalize_lab
from .config import Stopwatch, default_out, get_config, resolve_device
from .data import PairSampler, load_split, nested_subset, validation_set
from .metrics import mean_delta_e00
from .model import Discriminator, PaletteNet, recolor_batched
from .regions import PastedPairs, RegionTuples


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


def _region_tuples(cfg: dict):
    """Ours, off by default: the sampler's per-region tuples (:class:`pnlib.regions.RegionTuples`) or pasted
    pairs (:class:`pnlib.regions.PastedPairs`), or None."""
    if cfg.get("pasted", 0.0):
        return PastedPairs(cfg["pasted"])
    if not cfg.get("regions", 0.0):
        return None
    return RegionTuples(cfg["regions"], cfg.get("region_radius", 2), cfg.get("region_blur", 3),
                        cfg.get("region_eps", 1e-2), cfg.get("region_merge", 0.0))


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
    G = PaletteNet.from_config(cfg).to(device)
    D = Discriminator.from_config(cfg).to(device)
    train_pairs, val_pairs = load_split(cfg["data"], seed=cfg.get("split_seed", cfg["seed"]))
    train_pairs = nested_subset(train_pairs, cfg.get("train_photos", 0))
    sampler = PairSampler(train_pairs, size=tuple(cfg["size"]), batch_size=cfg["batch"], device=device,
                          seed=cfg["seed"] + 1000 * rank, scale=tuple(cfg["crop_scale"]), jitter=cfg["jitter"],
                          source_palette=G.uses_source_palette, extra=_region_tuples(cfg))
    val = validation_set(val_pairs, size=tuple(cfg["size"]), device=device)
    run = Run(cfg=cfg, out=Path(out), device=device, G=G, D=D, opt_g=_adam(G.parameters(), cfg, device),
              opt_rd=_adam(G.decoder.parameters(), cfg, device), opt_d=_adam(D.parameters(), cfg, device),
              sampler=sampler, val=val, rank=rank, world=world)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        run.enc, run.dec, run.disc = (DDP(m, device_ids=ids) for m in (G.encoder, G.decoder, D))
    return run


# ----------------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(run: Run) -> Path:
    """The whole run (networks, optimisers, random state, history), written atomically; then history.json."""
    run.out.mkdir(parents=True, exist_ok=True)
    state = checkpoint_state(
        run.G.model_args, run.G.state_dict(), run.cfg, run.step, run.history, D=run.D.state_dict(),
        opt_g=run.opt_g.state_dict(), opt_rd=run.opt_rd.state_dict(), opt_d=run.opt_d.state_dict(),
        rng={"torch": torch.get_rng_state(), "sampler": run.sampler.state_dict()})
    path = atomic_save(state, checkpoint_path(run.out))
    write_history(run)
    return path


def save_phase1(run: Run) -> None:
    """G at the end of phase 1, kept so notebook 04 can compare before / after phase 2."""
    atomic_save(checkpoint_state(run.G.model_args, run.G.state_dict(), run.cfg, run.step, run.history),
                phase1_path(run.out))


def write_history(run: Run) -> None:
    atomic_write_text(json.dumps({"config": run.cfg, "history": run.history}, indent=1), run.out / "history.json")


def restore(run: Run, state: dict) -> None:
    """Load a checkpoint into a run, refusing one of another preset or architecture."""
    try:
        check_matches(state, run.cfg, f"checkpoint {checkpoint_path(run.out)} does not match this run")
    except CheckpointMismatch as e:
        raise CheckpointMismatch(f"{e}. Use another --out folder, or delete the checkpoint to start over.") from None
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


def _e_loss(run: Run, ab: torch.Tensor, I_t: torch.Tensor) -> torch.Tensor:
    """L_E of eq. (3) on Îab_t against I_t's ab, plus (ours, off by default: the ``grad_loss`` setting) the
    E-loss of their gradients (:func:`pnlib.losses.gradient_loss`)."""
    loss = Ls.e_loss(ab.float(), I_t[:, 1:])
    if run.cfg.get("grad_loss", 0.0):
        loss = loss + run.cfg["grad_loss"] * Ls.gradient_loss(ab, I_t[:, 1:])
    return loss


def phase1_step(run: Run, b: dict) -> dict:
    """§3.1: one Adam step of FE + RD on L_E(G(I_s, P_t), Iab_t), eq. (3)."""
    with _autocast(run.device):
        ab = run.dec(run.enc(b["I_s"]), b["P_t"], b["I_s"], b.get("P_s"))  # G(I_s, P_t), eq. (2)
    loss = _e_loss(run, ab, b["I_t"])
    run.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    run.opt_g.step()
    return {"loss_e": loss.detach()}


def freeze_encoder(G: PaletteNet) -> None:
    """Phase 2 (Fig. 4): FE's parameters are fixed; only RD (and D) learn."""
    G.encoder.eval().requires_grad_(False)


def phase2_step(run: Run, b: dict, with_accuracy: bool = False, adv_weight: float = 1.0) -> dict:
    """§3.2: D's step on L_D (eq. 7), then RD's step on L_G = λ L_E + L_Adv (eq. 9); FE frozen.

    ``adv_weight``: a factor on L_Adv in L_G (1: the paper; 0: phase 2 with the E-loss only, for
    :func:`pnlib.experiments.phase2_ablation`)."""
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

    loss_e = _e_loss(run, ab, b["I_t"])
    with _autocast(run.device):
        loss_adv = Ls.adversarial_loss(D, I_hat, b["P_t"])
    loss_g = Ls.generator_loss(loss_e, adv_weight * loss_adv, run.cfg["lam"])
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
    preds = recolor_batched(G, val["I_s"], val["P_t"], batch, val["P_s"])
    return mean_delta_e00(denormalize_lab(preds), denormalize_lab(val["I_t"]).cpu())


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
    pending, clock = [], Stopwatch()
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
            row["elapsed_s"] = round(clock.s, 2)
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
    mine = torch.stack([p.detach().double().sum() for p in params]
                       + [p.detach().double().square().sum() for p in params])
    everyone = [torch.empty_like(mine) for _ in range(run.world)]
    dist.all_gather(everyone, mine)
    for r, theirs in enumerate(everyone):
        if not torch.equal(theirs, everyone[0]):
            raise RuntimeError(f"DDP: rank {r}'s weights differ from rank 0's at step {run.step}")


def train(preset: str = "quick", out=None, until_phase: int = 2, callback=None, progress: bool = True,
          resume: bool = True, **overrides):
    """Train (or resume) a run; returns ``(G, history)``. Prints whether it resumed or started fresh."""
    cfg = get_config(preset, **overrides)
    out = Path(out) if out is not None else default_out(preset, cfg["head"])
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
    Returns ``(G, history)`` with G in eval mode on the run's device. The run folder is ``out``, by
    default ``runs/<preset>/`` (``runs/<preset>-<head>/`` when ``head`` overrides the preset's).
    """
    cfg = get_config(preset, **overrides)
    out = Path(out) if out is not None else default_out(preset, cfg["head"])
    ck = checkpoint_path(out)
    need = cfg["steps1"] if until_phase == 1 else cfg["steps1"] + cfg["steps2"]
    for path in ((phase1_path(out), ck) if until_phase == 1 else (ck,)):
        if not path.exists():
            continue
        state = read_checkpoint(path)
        try:
            check_matches(state, cfg, f"checkpoint {path} does not match preset {preset!r} with these settings")
        except CheckpointMismatch as e:
            raise CheckpointMismatch(f"{e}. Pass out=<another folder> to train a run with these settings.") from None
        if state["step"] >= need:
            G = generator_from_state(state, path).to(resolve_device(cfg["device"]))
            print(f"loaded {path} (step {state['step']}: phase {until_phase} done); not training")
            return G.eval(), [r for r in state["history"] if r["step"] <= need]
    G, history = train(preset, out=out, until_phase=until_phase, callback=callback, progress=progress, **overrides)
    return G.eval(), history
