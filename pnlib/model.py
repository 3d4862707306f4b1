"""PaletteNet: feature encoder FE, recoloring decoder RD, discriminator D (§2, §3.2, §4.2).

Inputs are the source image I_s and the target palette P_t, both in normalised LAB ([-1, 1], §4.2);
the output is the ab image Îab_t. FE sees the whole of I_s; RD sees P_t at three of its four stages:

    FE(I_s) = c = {c1, c2, c3, c4}                                        (1)
    G(I_s, P_t) = RD(FE(I_s), P_t) = RD(c, P_t) = Îab_t                   (2)

    d1 = Deconv([P_t, c1])        d2 = Deconv([c2, d1])
    d3 = Deconv([P_t, c3, d2])    d4 = Deconv([P_t, c4, d3])
    Îab_t = tanh(Conv([I^L_s, d4]))          Î_t = [I^L_s, Îab_t]
    (head "affine", ours: Conv([I^L_s, d4]) gives A, β at each pixel and Îab_t = A · I^ab_s + β;
     head "palette", ours and what the presets train: RD also reads P_s, and Conv([I^L_s, d4]) weighs
     one similarity transform of ab per palette colour; see RecoloringDecoder)

[P, x] repeats the 18-vector P (six LAB colours) on every pixel of x and concatenates in depth (§2).
Shapes for an H×W input and width w (the paper's 288×432 is the default `summary` size):

    FE   stem  3 -> w        H        RD   d1  [P_t, c1]     18+8w -> 4w  H/8
         c4    w -> w        H/2           d2  [c2, d1]       4w+4w -> 2w  H/4
         c3    w -> 2w       H/4           d3  [P_t, c3, d2]  18+4w -> w   H/2
         c2   2w -> 4w       H/8           d4  [P_t, c4, d3]  18+2w -> w   H
         c1   4w -> 8w       H/16          Îab_t  [I^L_s, d4]  1+w -> 2    H

Every conv/deconv of FE and RD is followed by InstanceNorm and LeakyReLU (end of §2) except RD's last
conv, which feeds tanh. D(I, P) classifies whether a pair (image, palette) is related (§3.2, §4.2).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import arch_kwargs
from .correspondence import PaletteTransfer

MULTIPLE = 16  # four stride-2 stages: H and W must divide by 2**4


def check_size(x, m=MULTIPLE):
    """Raise ValueError unless x's H and W are multiples of m (FE and D halve the size four times).

    16×16 is also refused: its H/16 × W/16 map is one pixel, and InstanceNorm needs at least two.
    """
    h, w = x.shape[-2:]
    if h % m or w % m or h * w < 2 * m * m:
        raise ValueError(f"image size {h}x{w} is not a multiple of {m} in both H and W (and at least "
                         f"{m}x{2 * m}); pad it (pad_to_multiple) or use PaletteNet.recolor_any_size")


def tile_palette(P, like):
    """[P, x] of §2: palette P (N, 6, 3) -> (N, 18, h, w) repeated on every pixel of `like`."""
    h, w = like.shape[-2:]
    return P.reshape(P.shape[0], -1, 1, 1).expand(-1, -1, h, w)


class ConvNormAct(nn.Sequential):
    """conv (or deconv) -> InstanceNorm -> LeakyReLU(0.2), the unit of FE, RD and D (§2, §4.2).

    InstanceNorm normalises each image on its own, so one image's saturation does not shift another's
    (§4.2). It subtracts each channel's mean, which removes any constant a conv bias would add; IN's own
    affine β does that job, so the conv here never carries a bias.
    """

    def __init__(self, cin, cout, kernel, stride=1, padding=0, transpose=False):
        conv = nn.ConvTranspose2d if transpose else nn.Conv2d
        super().__init__(conv(cin, cout, kernel, stride, padding, bias=False),
                         nn.InstanceNorm2d(cout, affine=True),
                         nn.LeakyReLU(0.2))


class ResidualDown(nn.Module):
    """Residual block [6] that halves H and W (§2: "reduces the spatial size ... in half").

    Both branches end in IN -> LeakyReLU so that every conv of FE is followed by the pair (§2);
    the sum is returned as is.
    """

    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(cin, cout, 3, stride=2, padding=1),
                                  ConvNormAct(cout, cout, 3, padding=1))
        self.skip = ConvNormAct(cin, cout, 1, stride=2)

    def forward(self, x):
        return self.body(x) + self.skip(x)


class FeatureEncoder(nn.Module):
    """FE, eq. (1): I_s (N, 3, H, W) -> (c1, c2, c3, c4), c1 deepest (8w at H/16) ... c4 (w at H/2).

    No conv has a bias (§4.2: "initializing FE without bias ... the best choice").
    """

    def __init__(self, width=16):
        super().__init__()
        w = width
        self.stem = ConvNormAct(3, w, 3, padding=1)
        self.down = nn.ModuleList([ResidualDown(w, w), ResidualDown(w, 2 * w),
                                   ResidualDown(2 * w, 4 * w), ResidualDown(4 * w, 8 * w)])

    def forward(self, I_s):
        check_size(I_s)
        x = self.stem(I_s)
        feats = []
        for block in self.down:
            x = block(x)
            feats.append(x)
        c4, c3, c2, c1 = feats
        return c1, c2, c3, c4


HEADS = ("direct", "affine", "palette")
#: Heads whose RD also reads the source's own palette P_s (``recolor`` extracts it from the photo).
SOURCE_PALETTE_HEADS = ("palette",)


class RecoloringDecoder(nn.Module):
    """RD, eq. (2): (c, P_t, I_s) -> Îab_t (N, 2, H, W), normalised ab.

    Deconvs are 4×4 stride 2 padding 1, an exact 2× upsampling. The last layer is a 3×3 conv, not a
    deconv (§4.2: "the last layer as the convolution was better"). §4.2 found RD "with bias" best; a bias
    before InstanceNorm is cancelled by it (see ConvNormAct), so the one bias that can act is the last
    conv's, and that is where RD has it. The last conv sees [I^L_s, d4]; what it outputs is the ``head``:

    * ``"direct"`` (the paper, §2): two channels, tanh -> Îab_t in (-1, 1).
    * ``"affine"`` (ours, not the paper's): six channels, a 2×2 matrix A and an offset β at every pixel,
      applied to the source's own chroma: Îab_t = A · I^ab_s + β. A hue shift is almost exactly one
      rotation of the ab plane (one affine map per image nearly fits it: notebook 02), so the network
      only has to find the transform, not repaint every pixel. It starts as the identity (A = 1, β = 0).
      It beat the paper's head on held-out hue shifts (benchmarks/RESULTS.md, "Why the affine head").
    * ``"palette"`` (ours, not the paper's): RD also reads the source's own palette P_s and predicts, at
      every pixel, soft weights w_k(x) over the six palette entries; entry k moves the ab plane by the
      similarity transform T_k that sends P_s,k to P_t,k, and Îab_t = Σ_k w_k(x) T_k(I^ab_s(x)) (see
      :class:`PaletteTransfer`). The weights start as a colour-distance prior; the last conv learns
      corrections to them from context. With P_t = P_s every T_k is the identity: the photo comes back.
      What the presets train by default (pnlib.config); notebooks 03-04 train the paper's head.
    """

    def __init__(self, width=16, head="direct"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        # The palette head tiles [P_t, P_s] (36 channels) where the paper tiles P_t (18).
        w, p = width, 36 if head in SOURCE_PALETTE_HEADS else 18
        self.head = head
        self.up1 = ConvNormAct(p + 8 * w, 4 * w, 4, 2, 1, transpose=True)
        self.up2 = ConvNormAct(4 * w + 4 * w, 2 * w, 4, 2, 1, transpose=True)
        self.up3 = ConvNormAct(p + 2 * w + 2 * w, w, 4, 2, 1, transpose=True)
        self.up4 = ConvNormAct(p + w + w, w, 4, 2, 1, transpose=True)
        if head == "palette":  # [I_s, prior logits, d4] -> corrections to the six weight logits
            self.transfer = PaletteTransfer()
            self.to_ab = nn.Conv2d(3 + 6 + w, 6, 3, padding=1, bias=True)
            nn.init.zeros_(self.to_ab.weight)  # start at the prior
            nn.init.zeros_(self.to_ab.bias)
            return
        self.to_ab = nn.Conv2d(1 + w, 2 if head == "direct" else 6, 3, padding=1, bias=True)
        if head == "affine":  # start as the identity transform: Îab_t = I^ab_s
            nn.init.zeros_(self.to_ab.weight)
            with torch.no_grad():
                self.to_ab.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]))

    def forward(self, c, P_t, I_s, P_s=None):
        """``I_s``: the normalised LAB source (N, 3, H, W); the direct head reads only its L.
        ``P_s``: the source's palette (N, 6, 3), normalised LAB; read by the palette head only."""
        out = self.head_output(c, P_t, I_s, P_s)
        return torch.tanh(out) if self.head == "direct" else apply_affine(out, I_s[:, 1:])

    def head_output(self, c, P_t, I_s, P_s=None):
        """The last layer's output: 2 channels before tanh (direct), or A and β, 6 channels (affine, palette).

        An affine transform varies slowly over the image, so it can be computed small, upsampled and
        applied to the full-size source chroma (the palette sliders do this; see pnlib.widgets).
        """
        d4 = self.decode(c, P_t, P_s)
        if self.head != "palette":
            return self.to_ab(torch.cat([I_s[:, :1], d4], 1))
        corrections, prior = self.corrections(d4, I_s, P_s)               # (N, 6, H, W) each
        return self.transfer(corrections, I_s, P_s, P_t, prior)           # (N, 6, H, W): A, β

    def decode(self, c, P_t, P_s=None):
        """d4: RD's four deconvs over c = FE(I_s), with P_t (and the palette head's P_s) tiled in (§2)."""
        c1, c2, c3, c4 = c
        P = P_t
        if self.head in SOURCE_PALETTE_HEADS:
            if P_s is None:
                raise ValueError(f"RD with head {self.head!r} needs the source palette P_s "
                                 "(pnlib.recolor extracts it from the photo)")
            P = torch.cat([P_t, P_s], 1)                                   # (N, 12, 3)
        d1 = self.up1(torch.cat([tile_palette(P, c1), c1], 1))
        d2 = self.up2(torch.cat([c2, d1], 1))
        d3 = self.up3(torch.cat([tile_palette(P, c3), c3, d2], 1))
        return self.up4(torch.cat([tile_palette(P, c4), c4, d3], 1))

    def corrections(self, d4, I_s, P_s):
        """The palette head's last conv: corrections to the prior's weight logits from context, and the
        prior's logits: ``(corrections, prior)``, (N, 6, H, W) each (see :class:`PaletteTransfer`)."""
        prior = self.transfer.prior_logits(I_s, P_s)
        return self.to_ab(torch.cat([I_s, _like(prior, d4), d4], 1)), prior


def _like(x, ref):
    """``x`` in ``ref``'s memory layout: a concatenation of channels_last maps stays channels_last, so
    the conv after it runs without converting the whole input (on a CPU, 1.5× faster for RD's last conv)."""
    cl = torch.channels_last
    return x.contiguous(memory_format=cl) if ref.is_contiguous(memory_format=cl) and not ref.is_contiguous() else x


def apply_affine(t, ab):
    """Per-pixel Îab = A · ab + β with t = (A11, A12, A21, A22, β1, β2) (N, 6, H, W), ab (N, 2, H, W)."""
    a, b = ab[:, :1], ab[:, 1:]
    return torch.cat([t[:, 0:1] * a + t[:, 1:2] * b + t[:, 4:5],
                      t[:, 2:3] * a + t[:, 3:4] * b + t[:, 5:6]], 1)


def pad_to_multiple(x, m=MULTIPLE):
    """Pad x (N, C, h, w) at the bottom/right to multiples of m; returns (padded, (h, w)).

    Reflect padding continues the image's texture, so the network sees no artificial edge; it needs the
    pad to be smaller than the image, so tiny images fall back to replicate. A result of m×m is widened
    to m×2m (see check_size).
    """
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    if (h + ph) * (w + pw) < 2 * m * m:
        pw += m
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x, size):
    """Undo pad_to_multiple: keep the top-left size = (h, w)."""
    h, w = size
    return x[..., :h, :w]


class PaletteNet(nn.Module):
    """G = RD ∘ FE, eq. (2). forward(I_s, P_t) -> Îab_t; I_s (N, 3, H, W), P_t (N, 6, 3), normalised LAB.

    `width` is w in the module docstring's table. The default w = 16 is the teaching / CPU scale:
    557,220 parameters (FE 307,824, RD 249,396), 2.68 GFLOPs per 288×432 image. w = 64 is the paper
    scale (the paper gives no widths; 64 is the usual DCGAN/U-net base): 8,554,068 parameters
    (FE 4,902,336, RD 3,651,732), 36.1 GFLOPs per 288×432 image. ``head`` is RD's output (see
    RecoloringDecoder): "direct" is the paper's (notebooks 03-04 train it); "affine" and "palette" are
    ours, and the presets train "palette" by default. "affine" adds 616 parameters at w = 16 (2,344 at
    w = 64). H and W must be multiples of 16; recolor_any_size pads for you.
    """

    def __init__(self, width=16, head="direct"):
        super().__init__()
        self.width, self.head = width, head
        self.encoder = FeatureEncoder(width)
        self.decoder = RecoloringDecoder(width, head)

    @classmethod
    def from_config(cls, cfg):
        """G for a config (a preset's, or a checkpoint's): the architecture settings of pnlib.config.ARCH."""
        return cls(**arch_kwargs(cfg, "G"))

    @property
    def model_args(self) -> dict:
        """The constructor's arguments, ``PaletteNet(**G.model_args)`` builds the same network (a checkpoint
        stores them: :func:`pnlib.checkpoint.checkpoint_state`)."""
        return {"width": int(self.width), "head": self.head}

    @property
    def uses_source_palette(self) -> bool:
        """Whether RD reads P_s, the source's own palette (the palette head)."""
        return self.head in SOURCE_PALETTE_HEADS

    def forward(self, I_s, P_t, P_s=None):
        return self.decoder(self.encoder(I_s), P_t, I_s, P_s)

    def forward_features(self, c, P_t, I_s, P_s=None):
        """RD alone on precomputed c = FE(I_s): changing P_t reruns only RD (palette sliders)."""
        return self.decoder(c, P_t, I_s, P_s)

    def recolor_lab(self, I_s, P_t, P_s=None):
        """Î_t = [I^L_s, Îab_t] (§2): the source luminance with the predicted colour."""
        return torch.cat([I_s[:, :1], self(I_s, P_t, P_s)], 1)

    def recolor_any_size(self, I_s, P_t, P_s=None):
        """Î_t for any H×W: pad to multiples of 16, run, crop; L is I_s's own, untouched."""
        padded, size = pad_to_multiple(I_s)
        return torch.cat([I_s[:, :1], crop_to(self(padded, P_t, P_s), size)], 1)


def input_memory_format(model) -> torch.memory_format:
    """channels_last when the model's weights are (pnlib.inference.optimize_for_inference), else contiguous."""
    w = model.encoder.stem[0].weight
    return torch.channels_last if w.ndim == 4 and w.is_contiguous(memory_format=torch.channels_last) \
        and not w.is_contiguous() else torch.contiguous_format


@torch.inference_mode()
def recolor_batched(model, I_s, P_t, batch: int, P_s=None):
    """Î_t = [I^L_s, Îab_t] (normalised LAB, float32, on the CPU) for many tuples, ``batch`` at a time.

    ``I_s`` (N, 3, H, W) and ``P_t`` (N, 6, 3) in normalised LAB, on any device; any H×W
    (:meth:`PaletteNet.recolor_any_size`). ``P_s`` (N, 6, 3), the source palettes, reaches only a
    model that reads it (the palette head), which needs it. The model runs in eval mode and is put
    back as it was.
    """
    dev = next(model.parameters()).device
    fmt = input_memory_format(model)
    if not model.uses_source_palette:
        P_s = None
    elif P_s is None:
        raise ValueError("this model (palette head) reads the source palette P_s: pass it")
    was_training = model.training
    model.eval()
    out = [model.recolor_any_size(I_s[i:i + batch].to(dev).contiguous(memory_format=fmt),
                                  P_t[i:i + batch].to(dev),
                                  None if P_s is None else P_s[i:i + batch].to(dev)).float().cpu()
           for i in range(0, len(I_s), batch)]
    model.train(was_training)
    return torch.cat(out)


class Discriminator(nn.Module):
    """D(I, P), §3.2 and §4.2: logits that the pair (I, P) is related ("real"), one per image patch.

    Input [I, P] (3 + 18 channels); four 4×4 stride-2 convs w -> 2w -> 4w -> 1, so the output is a
    heat map (N, 1, H/16, W/16) of logits (§4.2). §4.2 puts IN + LeakyReLU after every conv of D; we
    leave them off the output layer, whose bias is D's only one (see ConvNormAct). w = 32: 177,089
    parameters, 1.69 GFLOPs per 288×432 pair (w = 64: 681,857, 5.42 GFLOPs).
    """

    def __init__(self, width=32):
        super().__init__()
        w = width
        self.body = nn.Sequential(ConvNormAct(3 + 18, w, 4, 2, 1),
                                  ConvNormAct(w, 2 * w, 4, 2, 1),
                                  ConvNormAct(2 * w, 4 * w, 4, 2, 1))
        # No norm here: InstanceNorm of a single channel forces each image's map to zero mean, so D
        # could never say "all real" or "all fake" for an image; the logits must stay free.
        self.logits = nn.Conv2d(4 * w, 1, 4, 2, 1, bias=True)

    @classmethod
    def from_config(cls, cfg):
        """D for a config: the architecture settings of pnlib.config.ARCH (``d_width``)."""
        return cls(**arch_kwargs(cfg, "D"))

    def forward(self, I, P):
        check_size(I)
        return self.logits(self.body(torch.cat([I, tile_palette(P, I)], 1)))


def count_parameters(module):
    """Number of scalars in module's parameters."""
    return sum(p.numel() for p in module.parameters())


def _gflops(fn):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9  # torch counts 2 FLOPs per multiply-add


def summary(model, D=None, size=(288, 432)):
    """Parameters of FE, RD (and D) and forward GFLOPs for one size=(H, W) image, as text."""
    dev = next(model.parameters()).device
    I = torch.zeros(1, 3, *size, device=dev)
    P = torch.zeros(1, 6, 3, device=dev)
    P_s = P if model.uses_source_palette else None  # the palette head also reads the photo's palette
    lines = [f"PaletteNet width {model.width}, head {model.head}, forward at {size[0]}x{size[1]}:",
             f"  FE  {count_parameters(model.encoder):>12,} params",
             f"  RD  {count_parameters(model.decoder):>12,} params",
             f"  G   {count_parameters(model):>12,} params  {_gflops(lambda: model(I, P, P_s)):8.2f} GFLOPs"]
    if D is not None:
        I, P = I.to(next(D.parameters()).device), P.to(next(D.parameters()).device)
        lines.append(f"  D   {count_parameters(D):>12,} params  {_gflops(lambda: D(I, P)):8.2f} GFLOPs")
    return "\n".join(lines)
