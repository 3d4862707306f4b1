"""Figures for the notebooks: setup, image grids, palette swatches, training history, and the one writer
of ``figures/``.

Every notebook's derived cell calls :func:`setup`; every figure worth keeping goes through
:func:`save_fig`, which writes ``figures/<name>.png`` only when asked (``SAVE_FIGS``), so an ordinary run
never touches the committed reference figures (pyprobml / handson-ml's pattern).

Images here are for *display*: RGB in [0, 1], either ``(3, H, W)`` tensors or ``(H, W, 3)`` arrays. The
network's tensors are normalised LAB (§4.2); :func:`to_rgb` turns them into display RGB.
"""
from __future__ import annotations

import os
import types
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .color import denormalize_lab, lab_to_rgb, rgb_to_lab
from .config import FIG_DIR, REPO_ROOT, default_out, get_config, resolve_device
from .palette import format_palette, palette_swatch, parse_palette

#: The environment variable that overrides a notebook's ``PRESET`` (tests set it to "ci").
PRESET_ENV = "PNLIB_PRESET"


def setup(preset: str = "quick", save_figs: bool = False) -> types.SimpleNamespace:
    """The derived cell of every notebook: preset (``$PNLIB_PRESET`` wins), config, device, seed.

    Returns a namespace with ``preset``, ``cfg`` (:func:`pnlib.config.get_config`), ``device``,
    ``save_figs`` and ``run_dir`` (``runs/<preset>/``, where executed copies and checkpoints go).
    """
    preset = os.environ.get(PRESET_ENV) or preset
    cfg = get_config(preset)
    device = resolve_device(cfg["device"])
    torch.manual_seed(0)
    if preset == "ci":  # tiny tensors: one thread is as fast, and a busy machine cannot starve it (10-30x)
        torch.set_num_threads(1)
    note = ""
    if preset == "full" and device.type == "cpu":
        note = "  (warning: no GPU found; the 'full' preset is paper scale and will be very slow on a CPU)"
    print(f"preset {preset!r} on {device}{note}")
    return types.SimpleNamespace(preset=preset, cfg=cfg, device=device, save_figs=bool(save_figs),
                                 run_dir=default_out(preset))


def save_fig(fig, name: str, enabled: bool) -> Path | None:
    """Write ``figures/<name>.png`` when ``enabled``; returns the path, or None when not written."""
    if not enabled:
        return None
    FIG_DIR.mkdir(parents=True, exist_ok=True)
    path = FIG_DIR / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"saved {path.relative_to(REPO_ROOT)}")
    return path


def to_rgb(lab_norm: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Normalised LAB (§4.2) -> display sRGB in [0, 1] (clipped to the gamut), on the CPU.

    Images ``(3, H, W)`` / ``(N, 3, H, W)`` use the default ``dim``; palettes ``(6, 3)`` take ``dim=-1``.
    """
    return lab_to_rgb(denormalize_lab(lab_norm.detach().float().cpu(), dim), dim, clip=True)


def _hwc(image) -> np.ndarray:
    """A ``(3, H, W)`` tensor or an ``(H, W, 3)`` / ``(H, W)`` array (uint8 or float) -> an array for ``imshow``."""
    if torch.is_tensor(image):
        image = image.detach().float().cpu()
        image = (image.permute(1, 2, 0) if image.ndim == 3 else image).numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:  # what pnlib.recolor returns
        image = image / 255.0
    return np.clip(image, 0, 1) if image.ndim == 3 else image  # RGB is clipped; a 2-D map keeps its range


def _panel(ax, image, title=None, palette=None, cmap=None, vmin=None, vmax=None, cbar=None):
    """One image on ``ax``: its title, an optional palette swatch under it, and for a 2-D map (a number
    per pixel, drawn with ``cmap`` between ``vmin`` and ``vmax``) a colour bar labelled ``cbar``."""
    ax.axis("off")
    img = _hwc(image)
    scale = dict(cmap=cmap, vmin=vmin, vmax=vmax) if img.ndim == 2 else {}
    im = ax.imshow(img, **scale)
    if title is not None:
        ax.set_title(title, fontsize=9)
    if palette is not None:
        swatch = ax.inset_axes([0.0, -0.2, 1.0, 0.16])
        swatch.imshow(palette_swatch(palette), aspect="auto")
        swatch.axis("off")
    if cbar and img.ndim == 2:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label(cbar, fontsize=8)
    return im


def show_images(images, titles=None, palettes=None, ncols=None, size=2.6, cmap=None, vmin=None, vmax=None,
                cbar=None):
    """A grid of images, each with an optional title and a palette swatch under it; returns the figure.

    ``images``: a list of ``(3, H, W)`` RGB tensors / ``(H, W, 3)`` arrays, or an ``(N, 3, H, W)`` tensor.
    A 2-D array is a map of numbers: drawn with ``cmap`` from ``vmin`` to ``vmax`` (a number, or one per
    image) and, when ``cbar`` names the quantity and its unit, with a colour bar. ``palettes``: one
    ``(6, 3)`` RGB palette (or None) per image.
    """
    images = list(images)
    n = len(images)
    ncols = ncols or min(n, 6)
    nrows = -(-n // ncols)
    h, w = _hwc(images[0]).shape[:2]
    extra = 0.22 * size * h / w if palettes is not None else 0.0  # room for the swatch under each image
    wide = 1.3 if cbar else 1.0  # room for the colour bars and their labels
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size * wide, nrows * (size * h / w + extra + 0.35)),
                             squeeze=False)
    if cbar:
        fig.subplots_adjust(wspace=0.45)
    per = lambda v, i: v[i] if isinstance(v, (list, tuple)) else v  # noqa: E731
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            _panel(ax, images[i], None if titles is None else titles[i],
                   None if palettes is None else palettes[i], cmap, per(vmin, i), per(vmax, i), cbar)
    return fig


def palette_comparison(source, source_palette, outputs: dict, targets, names, scores=None, size=2.6):
    """Fig. 9 (§4.5): one photo and several target palettes, one row per method; returns the figure.

    Column 0 holds the source with its palette P_s under it; then one column per target palette, each
    output with its target palette drawn under it. ``outputs``: ``{method: N images}`` (one row each, in
    order); ``targets``: N ``(6, 3)`` RGB palettes; ``names``: N column names; ``scores``:
    ``{method: N strings}`` (optional), a second title line under each output.
    """
    n, h, w = len(names), *_hwc(source).shape[:2]
    fig, axes = plt.subplots(len(outputs), n + 1, squeeze=False,
                             figsize=((n + 1) * size, len(outputs) * (1.22 * size * h / w + 0.6)))
    _panel(axes[0, 0], source, "source $I_s$, $P_s$ below", source_palette)
    for ax in axes[1:, 0]:
        ax.axis("off")
    for r, (method, images) in enumerate(outputs.items()):
        for c in range(n):
            extra = f"\n{scores[method][c]}" if scores else ""
            _panel(axes[r, c + 1], images[c], f"{method}: {names[c]}{extra}", targets[c])
    fig.tight_layout()
    return fig


def show_palette(palette, ax=None, title=None):
    """Draw one ``(6, 3)`` RGB palette as six patches labelled with their hex codes; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 1.1))
    ax.imshow(palette_swatch(palette, height=40, width=40))
    p = palette.detach().cpu().float() if torch.is_tensor(palette) else parse_palette(palette)
    light = rgb_to_lab(p, dim=-1)[:, 0] > 55  # dark text on light colours
    for k, hex_code in enumerate(format_palette(p)):
        ax.text(40 * k + 20, 20, hex_code, ha="center", va="center", fontsize=8,
                color="black" if light[k] else "white")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_shapes(shapes: dict, links=(), notes=None, title=None):
    """A U-net style diagram of feature maps, left to right (Fig. 3); returns the figure.

    ``shapes``: ``{name: (C, H, W)}`` in drawing order. Each map is a box whose height grows with H and
    width with log2 C, labelled with its name and shape (FE's maps blue, RD's orange). ``links``:
    ``(from, to)`` skip connections, drawn as arcs above the boxes. ``notes``: ``{name: text}``, an extra
    line under a box (e.g. what it was computed from).
    """
    notes = notes or {}
    fig, ax = plt.subplots(figsize=(1.3 * len(shapes), 4.4))
    top = max(s[1] for s in shapes.values())
    centre = {}
    for k, (name, (c, h, w)) in enumerate(shapes.items()):
        x, bw, bh = 1.4 * k, 0.12 * np.log2(max(c, 2)), 3.0 * np.sqrt(h / top)
        colour = "tab:blue" if name.startswith("c") or name == "stem" else "tab:orange"
        ax.add_patch(plt.Rectangle((x - bw / 2, -bh / 2), bw, bh, color=colour, alpha=0.75))
        label = f"{name}\n({c}, {h}, {w})" + (f"\n{notes[name]}" if name in notes else "")
        ax.text(x, -1.65, label, ha="center", va="top", fontsize=8)
        centre[name] = x
    for k, (a, b) in enumerate(sorted(links, key=lambda ab: abs(centre[ab[1]] - centre[ab[0]]))):
        t = np.linspace(0, np.pi, 60)
        xs = centre[a] + (centre[b] - centre[a]) * (1 - np.cos(t)) / 2
        ax.plot(xs, 1.6 + (0.25 + 0.2 * k) * np.sin(t), color="gray", lw=1)
        ax.annotate("", (centre[b], 1.55), (centre[b], 1.7), arrowprops=dict(arrowstyle="->", color="gray"))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.75) for c in ("tab:blue", "tab:orange")]
    ax.legend(handles + [plt.Line2D([], [], color="gray")], ["FE", "RD", "c_i into RD"], loc="lower right",
              fontsize=8, frameon=False, bbox_to_anchor=(1.0, 0.93))
    ax.text(-0.7, -2.85, "box height ~ sqrt(H), width ~ log2(C)", fontsize=7, color="gray")
    ax.set_xlim(-0.8, 1.4 * len(shapes) - 0.6)
    ax.set_ylim(-2.9, 2.6)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def two_phase_diagram():
    """Fig. 4: the two training phases of §3; returns the figure.

    Phase 1 (§3.1): FE and RD learn together on L_E, eq. (3). Phase 2 (§3.2): FE frozen; every step, D
    learns on L_D (eq. 7) from the four pairs of eq. (5)-(6), then RD on L_G = λ L_E + L_Adv (eq. 9).
    Trained networks are coloured (FE blue, RD orange, D green), a frozen one grey; arrows are the forward
    pass; the caption under each panel says which loss updates which network.
    """
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
    c = dict(FE="#9ecae1", RD="#fdae6b", D="#a1d99b", off="#d9d9d9", loss="#fcbba1", data="white")
    common = {"I_s": (0.6, 3.6, "$I_s$", "data"), "P_t": (4.4, 5.4, "$P_t$", "data"),
              "RD": (4.4, 3.6, "RD\n(trained)", "RD"), "It": (9.0, 5.4, "$I^{ab}_t$", "data")}
    phases = [
        ("Phase 1 (§3.1): pretrain FE and RD with the E-loss",
         {**common, "FE": (2.4, 3.6, "FE\n(trained)", "FE"), "out": (6.6, 3.6, "$\\hat I^{ab}_t$", "data"),
          "LE": (9.0, 3.6, "$L_E$, eq. (3)", "loss")},
         [("I_s", "FE"), ("FE", "RD"), ("P_t", "RD"), ("RD", "out"), ("out", "LE"), ("It", "LE")],
         "Adam on FE + RD: minimise $L_E$ (paper: until it converges; pnlib: steps1 steps)"),
        ("Phase 2 (§3.2): FE frozen; RD and D trained against each other",
         {**common, "FE": (2.4, 3.6, "FE\n(frozen)", "off"),
          "out": (6.6, 3.6, "$\\hat I_t = [I^L_s, \\hat I^{ab}_t]$", "data"),
          "LE": (9.0, 3.6, "$L_E$, eq. (3)", "loss"),
          "Io": (3.2, 1.3, "$(I_o, P_o)$ from $D_{orig}$,\nand $P_t$", "data"), "D": (6.6, 1.3, "D\n(trained)", "D"),
          "LD": (9.0, 2.0, "$L_D$, eq. (7)", "loss"), "LA": (9.0, 0.6, "$L_{Adv}$, eq. (8)", "loss")},
         [("I_s", "FE"), ("FE", "RD"), ("P_t", "RD"), ("RD", "out"), ("out", "LE"), ("It", "LE"),
          ("out", "D"), ("Io", "D"), ("D", "LD"), ("D", "LA")],
         "every step: Adam on D with $L_D$, then Adam on RD with $L_G = \\lambda L_E + L_{Adv}$ (eq. 9), "
         "$\\lambda$ = 10"),
    ]
    for ax, (title, nodes, edges, caption) in zip(axes, phases, strict=True):
        box = {}
        for name, (x, y, label, kind) in nodes.items():
            box[name] = ax.text(x, y, label, ha="center", va="center", fontsize=11,
                                bbox=dict(boxstyle="round,pad=0.45", fc=c[kind],
                                          ec="black" if kind != "data" else "none"))
        for a, b in edges:
            ax.annotate("", xy=nodes[b][:2], xytext=nodes[a][:2], arrowprops=dict(
                arrowstyle="-|>", color="black", lw=1.2, shrinkA=0, shrinkB=0,
                patchA=box[a].get_bbox_patch(), patchB=box[b].get_bbox_patch()))
        ax.set_title(title, fontsize=12)
        ax.text(5.0, -0.4, caption, ha="center", va="center", fontsize=10.5, color="darkred")
        ax.set_xlim(-0.2, 10.2)
        ax.set_ylim(-0.8, 6.1)
        ax.axis("off")
    axes[1].text(5.0, 0.25, "D's pairs: real $(I_o, P_o)$; fake $(\\hat I_t, P_t)$, $(I_o, P_t)$, $(\\hat I_t, P_o)$",
                 ha="center", fontsize=9.5, color="dimgray")
    fig.tight_layout()
    return fig


def plot_history(history: list, ax=None, label: str = "the model trained"):
    """Loss curves and validation ΔE00 (with the identity baseline) from a training history list;
    ``label`` names the model in the legend (e.g. "PaletteNet (the paper's)")."""
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.5))
    for key, name in (("loss_e", "L_E (eq. 3)"), ("loss_d", "L_D (eq. 7)"), ("loss_adv", "L_Adv (eq. 8)")):
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax[0].plot(*zip(*pts, strict=True), label=name)
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step (one Adam update)")
    adv = any("loss_d" in r for r in history)
    ax[0].set_ylabel("E-loss per image (sum over pixels)" + ("\nL_D, L_Adv: mean over D's patches" if adv else ""))
    ax[0].set_title("training losses")
    ax[0].legend()
    val = [(r["step"], r["val_de00"], r["identity_de00"]) for r in history if "val_de00" in r]
    if val:
        s, v, idn = zip(*val, strict=True)
        ax[1].plot(s, v, "o-", label=label)
        ax[1].plot(s, idn, "--", color="gray", label="identity (unchanged source)")
        ax[1].legend()
    p2 = next((r["step"] for r in history if r["phase"] == 2), None)
    for a in ax:
        if p2 is not None:
            a.axvline(p2, color="k", lw=0.8, ls=":")
    ax[1].set_xlabel("step (one Adam update)")
    ax[1].set_ylabel("mean ΔE00 (display sRGB)")
    ax[1].set_title("validation ΔE00 (held-out photos)")
    return ax


class LivePlot:
    """A ``callback`` for pnlib.train's train / load_or_train that redraws :func:`plot_history` in a notebook
    (``label``: the model's name in its legend)."""

    def __init__(self, every: int = 1, label: str = "the model trained"):
        self.rows, self.every, self.handle, self.calls, self.label = [], every, None, 0, label

    def __call__(self, row: dict, run) -> None:
        from IPython.display import display

        self.rows, self.calls = list(run.history), self.calls + 1
        if self.calls % self.every:
            return
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
        plot_history(self.rows, ax, label=self.label)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


# ----------------------------------------------------------------------------------------------------
# Phase 2 (§3.2): its history, the anti-cheat experiment, and what it changes

#: D's pairs of eq. (7) as logged by pnlib.train (``acc_<name>``): label, colour, line style.
PAIR_STYLE = {"Io_Po": ("(I_o, P_o) real: eq. (5)", "tab:green", "-"),
              "Ihat_Pt": ("(Î_t, P_t) generated: eq. (5)", "tab:blue", "-"),
              "Io_Pt": ("(I_o, P_t) photo + target palette: eq. (6)", "tab:cyan", "--"),
              "Ihat_Po": ("(Î_t, P_o) output + photo's palette: eq. (6)", "tab:purple", "--"),
              "Io_Pother": ("(I_o, P_o') cheat test: another photo's palette", "tab:red", "-")}


def plot_phase2(history: list, lam: float = 10.0, axes=None):
    """Phase 2 of a training history (§3.2): L_D (eq. 7) and L_Adv (eq. 8) with their chance levels, D's
    accuracy on each of its four pairs, and the two parts of L_G = λ L_E + L_Adv (eq. 9).

    Works on the history that :func:`pnlib.train.load_or_train` returns, so also for a run loaded from
    disk. Losses are means over each logging interval; accuracies are measured on the logging step's batch.
    """
    rows = [r for r in history if r.get("phase") == 2 and "loss_d" in r]
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    s = [r["step"] for r in rows]
    ax = axes[0]
    ax.plot(s, [r["loss_d"] for r in rows], "o-", color="k", label="L_D (eq. 7), 4 terms")
    ax.plot(s, [r["loss_adv"] for r in rows], "s-", color="tab:orange", label="L_Adv (eq. 8)")
    ax.axhline(4 * np.log(2), color="k", ls=":", lw=0.8, label="L_D of an undecided D: 4 ln 2")
    ax.axhline(np.log(2), color="tab:orange", ls=":", lw=0.8, label="L_Adv of an undecided D: ln 2")
    ax.set(xlabel="training step (phase 2)", ylabel="loss (nats, mean BCE over D's patches)", title="D against RD")
    ax.legend(fontsize=7)
    ax = axes[1]
    for name, (label, colour, style) in PAIR_STYLE.items():
        if any(f"acc_{name}" in r for r in rows):
            ax.plot(s, [100 * r[f"acc_{name}"] for r in rows], style, color=colour, marker="o", ms=3, label=label)
    ax.set(xlabel="training step (phase 2)", ylabel="D's patches right (%)", ylim=(-3, 103),
           title="D's accuracy on each pair (one batch per point)")
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.semilogy(s, [lam * r["loss_e"] for r in rows], "o-", color="tab:gray", label=f"λ L_E (eq. 3), λ = {lam:g}")
    ax.semilogy(s, [r["loss_adv"] for r in rows], "s-", color="tab:orange", label="L_Adv (eq. 8)")
    ax.set(xlabel="training step (phase 2)", ylabel="loss (normalised ab², nats; log scale)",
           title="the two parts of L_G (eq. 9)")
    ax.legend(fontsize=7)
    return axes


def plot_anticheat(runs: dict, axes=None):
    """The anti-cheat experiment over seeds (§3.2, eq. 5 against eq. 7): per pair, the mean over seeds of
    the share of patches D calls real, with a min-max band. ``runs`` maps anticheat (False / True) to a
    list of row lists, one per seed, from :func:`pnlib.experiments.anticheat_experiment`."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for ax, flag in zip(axes, (False, True), strict=True):
        seeds = runs[flag]
        steps = [r["step"] for r in seeds[0]]
        for name in ("Io_Po", "Ihat_Pt", "Io_Pt", "Io_Pother"):
            label, colour, style = PAIR_STYLE[name]
            v = 100 * np.array([[r[f"real_{name}"] for r in rows] for rows in seeds])
            ax.plot(steps, v.mean(0), style, color=colour, label=label)
            ax.fill_between(steps, v.min(0), v.max(0), color=colour, alpha=0.18, lw=0)
        ax.set(xlabel="D training step", title=f"{'with' if flag else 'without'} eq. (6): mean and min-max "
               f"of {len(seeds)} seeds")
    axes[0].set_ylabel("patches called real (%)")
    axes[0].legend(fontsize=7)
    return axes


def plot_phase_change(I_s, out1, out2, I_t, P_t, titles, vmax=None, who: str = ""):
    """Rows of source | after phase 1 (with P_t) | after phase 2 | per-pixel ΔE00 between the two outputs
    | ground truth, one shared colour scale for the ΔE00 maps (§3.2: what phase 2 changes). Inputs are
    normalised LAB batches of equal length; ``who`` names the model in the column titles; returns the figure."""
    from .metrics import delta_e00

    de = delta_e00(denormalize_lab(out2.float().cpu()), denormalize_lab(out1.float().cpu()))
    vmax = vmax or float(de.max())
    n, (h, w) = len(I_s), I_s.shape[-2:]
    fig, axes = plt.subplots(n, 5, figsize=(17, n * (3.2 * h / w + 0.8)), squeeze=False, gridspec_kw={"wspace": 0.3})
    for i in range(n):
        _panel(axes[i][0], to_rgb(I_s[i]), f"{titles[i]}\nsource I_s")
        _panel(axes[i][1], to_rgb(out1[i]), f"{who} after phase 1".strip(), to_rgb(P_t[i], dim=-1))
        _panel(axes[i][2], to_rgb(out2[i]), f"{who} after phase 2".strip())
        _panel(axes[i][3], de[i].numpy(), "ΔE00(phase 2, phase 1)", cmap="magma", vmin=0, vmax=vmax, cbar="ΔE00")
        _panel(axes[i][4], to_rgb(I_t[i]), "ground truth I_t")
    return fig




def plot_phase2_ablation(results: dict, val: dict, index: int, identity: float | None = None, size=3.0):
    """``figures/phase2_ablation.png``: phase 2 three ways from one phase-1 model
    (:func:`pnlib.experiments.phase2_ablation`).

    Top: held-out ΔE00 against the phase-2 step per variant, and D's share of patches right per pair of
    eq. (7) at the last step. Bottom: validation tuple ``index`` (source, ground truth, each variant).
    """
    names = list(results)
    fig = plt.figure(figsize=(size * (2 + len(names)), 2 * size + 0.6))
    grid = fig.add_gridspec(2, 2 + len(names))
    ax = fig.add_subplot(grid[0, : (2 + len(names)) // 2])
    for name in names:
        h = results[name]["history"]
        ax.plot([r["step"] for r in h], [r["val_de00"] for r in h], marker="o", ms=3, label=name)
    if identity is not None:
        ax.axhline(identity, color="grey", ls="--", lw=1, label="unchanged source")
    ax.set(xlabel="phase-2 step", ylabel="held-out ΔE00", title="PaletteNet (the paper's): held-out ΔE00 in phase 2")
    ax.legend(fontsize=7)
    axb = fig.add_subplot(grid[0, (2 + len(names)) // 2:])
    pairs = [k for k in results[names[0]]["history"][-1] if k.startswith("acc_")]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        last = results[name]["history"][-1]
        axb.bar(np.arange(len(pairs)) + i * width, [last[k] for k in pairs], width, label=name)
    axb.set_xticks(np.arange(len(pairs)) + 0.4 - width / 2, [k[4:].replace("_", ", ") for k in pairs])
    axb.set(ylim=(0, 1), ylabel="D right (share of patches)", title="D's accuracy per pair of eq. (7), last step")
    axb.legend(fontsize=7, loc="lower left")
    shift = int(val["shift_t"][index])
    panels = [(to_rgb(val["I_s"][index]), "I_s (held out)"), (to_rgb(val["I_t"][index]), f"I_t: +{shift}°")]
    with torch.no_grad():
        for name in names:
            G = results[name]["G"]
            dev = next(G.parameters()).device
            out = G.recolor_lab(val["I_s"][index:index + 1].to(dev), val["P_t"][index:index + 1].to(dev),
                                None if "P_s" not in val else val["P_s"][index:index + 1].to(dev))
            panels.append((to_rgb(out[0]), name))
    for k, (img, title) in enumerate(panels):
        _panel(fig.add_subplot(grid[1, k]), img, title, palette=to_rgb(val["P_t"][index], dim=-1) if k == 1 else None)
    fig.tight_layout()
    return fig
