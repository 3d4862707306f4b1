"""Large photos (issue 17): the network at a working resolution, its colour transform upsampled, in bounded memory."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import pnlib.inference as I
from pnlib.color import denormalize_lab, lab_to_rgb, lab_to_uint8, rgb_to_lab, to_uint8, uint8_to_lab
from pnlib.model import PaletteNet
from pnlib.photos import load_image, load_pixels

PALETTE = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"
ROOT = Path(__file__).resolve().parents[1]


def _photo(h, w, seed=0):
    """A smooth synthetic photo with some noise, uint8 (h, w, 3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([0.5 + 0.4 * np.sin(x / w * 6), 0.5 + 0.4 * np.cos(y / h * 5), (x + y) / (h + w)], -1)
    rgb += np.random.default_rng(seed).normal(0, 0.03, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _palette_model(seed=0):
    torch.manual_seed(seed)
    G = PaletteNet(8, "palette").eval()
    with torch.no_grad():   # any weights: corrections that are not zero
        for p in G.decoder.to_ab.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return G


def test_uint8_colour_conversions_match_the_float_ones():
    u = torch.from_numpy(_photo(40, 60))
    lab = rgb_to_lab(u.permute(2, 0, 1).float() / 255)
    assert (uint8_to_lab(u) - lab).abs().max() < 1e-3
    lab[1:] *= 1.7   # some colours out of gamut: clipped alike
    ref = to_uint8(lab_to_rgb(lab)).permute(1, 2, 0)
    assert (lab_to_uint8(lab).int() - ref.int()).abs().max() <= 1


def test_load_pixels_is_load_image_in_uint8(tmp_path):
    a = _photo(20, 30)
    Image.fromarray(a).save(tmp_path / "p.png")
    Image.fromarray(a[..., 0]).save(tmp_path / "g.png")
    for src in (tmp_path / "p.png", tmp_path / "g.png", a, a[..., 1]):
        px = load_pixels(src)
        assert px.dtype == np.uint8 and px.shape == (20, 30, 3)
        assert torch.equal(torch.from_numpy(px.copy()).permute(2, 0, 1).float() / 255, load_image(src))
    rgba = np.dstack([a, np.full((20, 30), 128, np.uint8)])
    assert torch.equal(load_pixels(rgba), load_image(rgba))   # alpha: the float rules


@pytest.mark.parametrize("affine", [True, False])
def test_render_full_upsamples_as_interpolate(affine):
    """Row blocks, raw units: the same pixels as upsampling the whole transform with F.interpolate."""
    torch.manual_seed(0)
    H, W, h, w = 203, 301, 37, 55
    lab = rgb_to_lab(torch.from_numpy(_photo(H, W)).permute(2, 0, 1).float()[None] / 255)
    t = torch.randn(2, 6 if affine else 2, h, w) * 0.2
    if affine:
        t[:, 0] += 1
        t[:, 3] += 1
    old = I.ROW_BLOCK
    I.ROW_BLOCK = 7 * W   # many blocks
    try:
        got = I.render_full(t, affine, lambda y0, y1: lab[..., y0:y1, :], (H, W))
    finally:
        I.ROW_BLOCK = old
    up = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)
    from pnlib.color import normalize_lab
    from pnlib.model import apply_affine
    ab = apply_affine(up, normalize_lab(lab)[:, 1:].expand(2, -1, -1, -1)) if affine else up
    # the reference: the whole image at once, [I^L_s, Îab_t] -> sRGB -> uint8
    ab_raw = denormalize_lab(torch.cat([torch.zeros_like(ab[:, :1]), ab], 1))[:, 1:]
    rgb = lab_to_rgb(torch.cat([lab[:, :1].expand(2, -1, -1, -1), ab_raw], 1), clip=True)
    ref = to_uint8(rgb).permute(0, 2, 3, 1).numpy()
    assert got.shape == (2, H, W, 3)
    assert np.abs(got.astype(int) - ref).max() <= 1


@pytest.mark.parametrize("head", ["palette", "direct"])
def test_work_size_runs_the_network_small_and_keeps_the_detail(head):
    img = _photo(240, 360)
    G = _palette_model() if head == "palette" else PaletteNet(8).eval()
    full = I.recolor(img, PALETTE, model=G, work_size=None)
    small = I.recolor(img, PALETTE, model=G, work_size=120)
    assert small.shape == full.shape == img.shape
    assert np.array_equal(I.recolor(img, PALETTE, model=G, work_size=360), full)   # no smaller: full
    if head == "palette":   # a smooth transform: close to full resolution (an untrained direct head is noise)
        assert np.abs(small.astype(int) - full).mean() < 6
    # L is the source's at every pixel (up to gamut clipping): the luminance detail survives.
    L_src = rgb_to_lab(torch.from_numpy(img).permute(2, 0, 1).float() / 255)[0]
    L_out = rgb_to_lab(torch.from_numpy(small).permute(2, 0, 1).float() / 255)[0]
    assert (L_out - L_src).abs().median() < 1.0


def test_recolor_palettes_at_a_working_size_equals_recolor():
    img, G = _photo(150, 230), _palette_model(1)
    pals = [PALETTE, "navy teal gold coral ivory black"]
    many = I.recolor_palettes(img, pals, model=G, work_size=64)
    for k, P in enumerate(pals):
        assert np.abs(many[k].astype(int) - I.recolor(img, P, model=G, work_size=64)).max() <= 1


def test_cli_writes_jpeg_at_quality_95_and_takes_work_size(tmp_path, monkeypatch):
    import pnlib.inference
    from pnlib.__main__ import main

    Image.fromarray(_photo(90, 130)).save(tmp_path / "in.png")
    G = _palette_model()
    monkeypatch.setattr(pnlib.inference, "cached_model", lambda *a, **k: G)
    assert main(["recolor", str(tmp_path / "in.png"), "--palette", PALETTE, "-o", str(tmp_path / "o.jpg"),
                 "--work-size", "64"]) == 0
    assert main(["recolor", str(tmp_path / "in.png"), "--palette", PALETTE, "-o", str(tmp_path / "q.jpg"),
                 "--quality", "60"]) == 0
    with Image.open(tmp_path / "o.jpg") as a, Image.open(tmp_path / "q.jpg") as b:
        assert a.size == b.size == (130, 90)
        # libjpeg's quality shows in the quantisation table: smaller steps at 95 than at 60
        assert sum(a.quantization[0]) < sum(b.quantization[0])
    assert main(["recolor", str(tmp_path / "in.png"), "--palette", PALETTE, "-o", str(tmp_path / "x.jpg"),
                 "--quality", "0"]) == 2


_CHILD = """
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(2)
from pnlib.inference import optimize_for_inference, recolor
from pnlib.model import PaletteNet
H, W = 4000, 6000
y = np.linspace(0, 255, H, dtype=np.float32)[:, None]
x = np.linspace(0, 255, W, dtype=np.float32)[None, :]
img = np.empty((H, W, 3), np.uint8)
img[..., 0] = y; img[..., 1] = x; img[..., 2] = (x + y) / 2
img[::7, ::5] = 255 - img[::7, ::5]                   # some detail
torch.manual_seed(0)
G = optimize_for_inference(PaletteNet(16, "palette").eval())   # the shipped model's size and head
out = recolor(img, "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee", model=G)
print(json.dumps({"shape": list(out.shape), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_a_24mp_photo_recolors_within_2_gb():
    """A 6000×4000 synthetic photo, in a fresh process: its peak resident memory stays under 2 GB."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PNLIB_RUNS_DIR": os.environ["PNLIB_RUNS_DIR"]}
    proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["shape"] == [4000, 6000, 3]
    assert res["peak_mb"] <= 2048, res


def test_palette_of_is_the_palette_recolor_reads_at_any_size():
    """P_s is extracted at a long side of at most MAX_SIDE whatever work_size is, and palette_of is that
    palette: asked for its own palette, a photo larger than MAX_SIDE comes back at every work_size (the
    palette head's T_k are all the identity, whatever the weights); a smaller photo gets the palette of
    its own pixels."""
    from pnlib.palette import extract_palette
    from pnlib.photos import MAX_SIDE
    G = _palette_model()
    big = _photo(700, 1100, seed=3)
    assert max(big.shape[:2]) > MAX_SIDE
    own = I.palette_of(big)
    small = F.interpolate(torch.from_numpy(big).permute(2, 0, 1)[None].float() / 255, size=(652, 1024),
                          mode="bilinear", antialias=True)[0].clamp(0, 1)
    torch.testing.assert_close(own, extract_palette(small), atol=2e-3, rtol=0)   # the photo at 1024 px
    for work in (512, None):
        out = I.recolor(big, own, model=G, work_size=work)
        assert np.abs(out.astype(int) - big).max() <= 1, work
    little = _photo(60, 90, seed=4)
    torch.testing.assert_close(I.palette_of(little), extract_palette(load_image(little)), rtol=0, atol=0)
