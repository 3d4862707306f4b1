"""pnlib.inference: load_model, load_image, recolor at any size, the `recolor` command (seconds, no shipped file)."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data, transform

from pnlib import checkpoint as CK
from pnlib import inference as I
from pnlib.__main__ import main
from pnlib.bench import bench_recolor
from pnlib.checkpoint import CheckpointMismatch
from pnlib.color import denormalize_lab, lab_to_rgb, normalize_lab, rgb_to_lab
from pnlib.config import get_config
from pnlib.model import PaletteNet

ROOT = Path(__file__).resolve().parent.parent
PALETTE = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"
# A moderate palette: the photo's own kind of colours, muted (what a user of Fig. 6 would try).
MODERATE = "#7a6a5a,#a08070,#506070,#c0b0a0,#607050,#303030"


@pytest.fixture(scope="module", params=["direct", "palette"])
def model(request):
    """The paper's head and ours (the shipped model's)."""
    torch.manual_seed(0)
    return PaletteNet(8, request.param).eval()


@pytest.fixture(scope="module")
def moderate_model():
    """A fresh model whose last layer is scaled down: it predicts moderate chroma, as trained ones do."""
    torch.manual_seed(1)
    G = PaletteNet(8).eval()
    with torch.no_grad():
        G.decoder.to_ab.weight.mul_(0.15)
        G.decoder.to_ab.bias.zero_()
    return G


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, save_model):
    """A saved model with our head, as shipped, for the command-line tests."""
    torch.manual_seed(0)
    return save_model(PaletteNet(8, "palette").eval(), tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def photo():
    """chelsea at 64x96, uint8 (H, W, 3): a natural photo, small enough for a quick test."""
    return (transform.resize(data.chelsea(), (64, 96), anti_aliasing=True) * 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# load_model


def test_load_model_reads_width_and_weights(tmp_path, save_model, model):
    G = I.load_model(save_model(model, tmp_path / "model.pt"), device="cpu")
    assert isinstance(G, PaletteNet) and G.width == 8 and not G.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(G.state_dict()[k], v)


def _old_layout(path, G, cfg):
    """A checkpoint as pnlib wrote them before model_args (format version 1): the network from the config."""
    torch.save({"format": "pnlib-checkpoint/1", "config": cfg, "step": 0, "G": G.state_dict(), "history": []}, path)
    return path


def test_load_model_without_head_key_is_the_papers(tmp_path):
    """Checkpoints written before the head setting existed hold the paper's direct head."""
    cfg = get_config("ci")
    del cfg["head"]
    assert I.load_model(_old_layout(tmp_path / "old.pt", PaletteNet(8), cfg), device="cpu").head == "direct"


@pytest.mark.parametrize("head", ["direct", "affine", "palette"])
def test_checkpoints_store_model_args_and_old_ones_still_load(tmp_path, save_model, head):
    """A checkpoint holds PaletteNet's constructor arguments and its format version; one written in the
    old layout (no model_args: built from the config, as the shipped checkpoint is) loads the same."""
    torch.manual_seed(3)
    G = PaletteNet(12, head).eval()
    state = CK.read_checkpoint(save_model(G, tmp_path / "new.pt"))
    assert state["format"] == CK.FORMAT == "pnlib-checkpoint/2"
    assert state["model_args"] == {"width": 12, "head": head}
    old = _old_layout(tmp_path / "old.pt", G, get_config("ci", head=head, width=12))
    for path in (tmp_path / "new.pt", old):
        back = I.load_model(path, device="cpu")
        assert (back.width, back.head) == (12, head)
        for k, v in G.state_dict().items():
            assert torch.equal(back.state_dict()[k], v), (path, k)
    # export reads the old layout and writes the current one
    CK.export_model(old, tmp_path / "exported.pt")
    assert CK.read_checkpoint(tmp_path / "exported.pt")["model_args"] == {"width": 12, "head": head}


def test_model_args_win_over_the_config_and_are_checked(tmp_path, save_model):
    torch.manual_seed(2)
    aff = PaletteNet(8, "affine").eval()
    state = CK.read_checkpoint(save_model(aff, tmp_path / "aff.pt"))
    state["config"]["head"], state["config"]["width"] = "direct", 64   # model_args build the network
    G = CK.generator_from_state(state, "aff.pt")
    assert (G.width, G.head) == (8, "affine")
    bad = [({"width": 8, "head": "tanh"}, "unknown head 'tanh'"),
           ({"width": "8", "head": "direct"}, "positive int width"),
           ({"width": 8}, "model_args must be")]
    for args, msg in bad:
        with pytest.raises(CheckpointMismatch, match=msg):
            CK.generator_from_state({**state, "model_args": args}, "x.pt")


def test_load_model_affine_and_head_mismatch(tmp_path, save_model):
    torch.manual_seed(2)
    aff = PaletteNet(8, "affine").eval()
    G = I.load_model(save_model(aff, tmp_path / "aff.pt"), device="cpu")
    assert G.head == "affine"
    wrong = CK.checkpoint_state({"width": 8, "head": "direct"}, aff.state_dict(), get_config("ci", head="direct"),
                                0, [])
    CK.atomic_save(wrong, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatch, match="do not fit PaletteNet"):
        I.load_model(tmp_path / "bad.pt", device="cpu")


@pytest.mark.skipif(not I.SHIPPED.is_file(), reason="no shipped checkpoint (pnlib/checkpoints/palettenet.pt)")
def test_the_shipped_checkpoint_is_the_old_layout_and_loads():
    state = CK.read_checkpoint(I.SHIPPED)
    assert state["format"] == "pnlib-checkpoint/1" and "model_args" not in state
    G = I.load_model(device="cpu")
    assert (G.width, G.head) == (16, "palette")


def test_load_model_missing_shipped_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setattr(I, "SHIPPED", tmp_path / "nope" / "palettenet.pt")
    with pytest.raises(FileNotFoundError) as e:
        I.load_model()
    msg = str(e.value)
    assert "shipped checkpoint" in msg and "python -m pnlib train" in msg and "python -m pnlib export" in msg


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        I.load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointMismatch, match="not a readable pnlib checkpoint"):
        I.load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointMismatch, match="not a pnlib checkpoint"):
        I.load_model(other)


def test_optimized_model_computes_the_same(model, photo):
    fast = I.optimize_for_inference(copy.deepcopy(model))
    assert fast.state_dict().keys() == model.state_dict().keys()
    x = normalize_lab(rgb_to_lab(I.load_image(photo)[None]))
    P_t, P_s = I.target_and_source(I.load_image(photo), PALETTE, model)
    P_s = None if P_s is None else P_s[None]
    with torch.inference_mode():
        torch.testing.assert_close(fast(x, P_t[None], P_s), model(x, P_t[None], P_s), atol=1e-4, rtol=0)
    diff = np.abs(I.recolor(photo, PALETTE, model=fast).astype(int) - I.recolor(photo, PALETTE, model=model))
    assert diff.max() <= 1


# ---------------------------------------------------------------------------------------------------
# load_image


def test_load_image_kinds(photo, tmp_path):
    ref = I.load_image(photo)
    assert ref.dtype == torch.float32 and ref.shape == (3, 64, 96)
    torch.testing.assert_close(ref, torch.from_numpy(photo).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(I.load_image(photo.astype(np.float32) / 255), ref)
    torch.testing.assert_close(I.load_image(Image.fromarray(photo)), ref)
    torch.testing.assert_close(I.load_image(ref), ref)
    p = tmp_path / "a.png"
    Image.fromarray(photo).save(p)
    torch.testing.assert_close(I.load_image(p), ref)
    torch.testing.assert_close(I.load_image(str(p)), ref)


def test_load_image_gray_and_rgba_follow_data_rules(photo):
    gray = photo[..., 0]
    g = I.load_image(gray)
    assert g.shape == (3, 64, 96) and torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    rgba = np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])
    a = I.load_image(rgba)
    expect = (photo / 255) * (128 / 255) + (1 - 128 / 255)  # composited over white
    torch.testing.assert_close(a, torch.from_numpy(expect).permute(2, 0, 1).float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(I.load_image(rgba.astype(np.float32) / 255), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(I.load_image(Image.fromarray(rgba)), a, atol=1e-6, rtol=0)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        I.load_image(tmp_path / "nothere.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ValueError, match="bad.jpg.*unreadable"):
        I.load_image(bad)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        I.load_image(np.full((4, 4, 3), 200.0))
    with pytest.raises(ValueError, match="shape"):
        I.load_image(np.zeros((4, 4, 5), np.uint8))


# ---------------------------------------------------------------------------------------------------
# recolor


@pytest.mark.parametrize("size", [(37, 53), (5, 7), (16, 16), (64, 96)])
def test_recolor_any_size(model, photo, size):
    img = (transform.resize(photo, size, anti_aliasing=True) * 255).astype(np.uint8)
    out = I.recolor(img, PALETTE, model=model)
    assert out.shape == (*size, 3) and out.dtype == np.uint8


def test_recolor_inputs_gray_rgba_pil_path(model, photo, tmp_path):
    out_gray = I.recolor(photo[..., 1], PALETTE, model=model)
    assert out_gray.shape == (64, 96, 3) and out_gray.dtype == np.uint8
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])  # opaque: the same as RGB
    ref = I.recolor(photo, PALETTE, model=model)
    # uint8 RGB takes load_pixels' uint8 path, RGBA the float one: the same pixels, converted along two
    # float paths, so a pixel at a rounding boundary may land one level apart (1 pixel of 6,144 seen).
    diff = np.abs(I.recolor(rgba, PALETTE, model=model).astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert np.array_equal(I.recolor(Image.fromarray(photo), PALETTE, model=model), ref)
    p = tmp_path / "p.png"
    Image.fromarray(photo).save(p)
    assert np.array_equal(I.recolor(p, PALETTE, model=model), ref)
    # Any palette parse_palette takes: CSS names, (6, 3) floats.
    assert I.recolor(photo, "navy teal gold coral ivory black", model=model).shape == (64, 96, 3)
    assert I.recolor(photo, np.full((6, 3), 0.5), model=model).shape == (64, 96, 3)


def test_recolor_bad_palette_names_the_entry(model, photo):
    with pytest.raises(ValueError, match="entry 2"):
        I.recolor(photo, "#264653,#12345,#e9c46a,#f4a261,#e76f51,#f1faee", model=model)


def _lightness(rgb_u8):
    return rgb_to_lab(torch.from_numpy(rgb_u8).permute(2, 0, 1).double() / 255)[0]


def test_recolor_keeps_L_where_the_colour_is_in_gamut(model, photo):
    """Î_t = [I^L_s, Îab_t] (§2): wherever [L_s, Îab_t] is displayable, L survives up to 8-bit rounding.
    (The network at the working size, ``net_scale=1``, so that the model's own forward says where Îab_t
    is displayable; the rendering that puts L back is the same at every net_scale.)"""
    out = I.recolor(photo, PALETTE, model=model, net_scale=1)
    x = normalize_lab(rgb_to_lab(I.load_image(photo)[None].double())).float()
    P_t, P_s = I.target_and_source(I.load_image(photo), PALETTE, model)   # what recolor gives the model
    with torch.inference_mode():
        lab = denormalize_lab(model.recolor_any_size(x, P_t[None], None if P_s is None else P_s[None]).double())
    raw = lab_to_rgb(torch.cat([rgb_to_lab(I.load_image(photo)[None].double())[:, :1], lab[:, 1:]], 1),
                     clip=False)[0]
    inside = ((raw >= 0) & (raw <= 1)).all(0)
    dL = (_lightness(out) - _lightness(photo)).abs()
    assert inside.float().mean() > 0.2  # the check below covers a real share of the pixels
    assert float(dL[inside].max()) < 0.5, float(dL[inside].max())  # 8-bit rounding of RGB only


def test_recolor_keeps_L_on_a_photo_with_a_moderate_palette(moderate_model, photo):
    """Over the whole photo, gamut clipping moves L little when the predicted chroma is moderate."""
    out = I.recolor(photo, MODERATE, model=moderate_model)
    dL = (_lightness(out) - _lightness(photo)).abs()
    assert float(dL.mean()) < 1.5, float(dL.mean())


@pytest.mark.skipif(not I.SHIPPED.is_file(), reason="no shipped checkpoint (pnlib/checkpoints/palettenet.pt)")
def test_shipped_model_keeps_L_with_a_moderate_palette(photo):
    out = I.recolor(photo, MODERATE)
    assert float((_lightness(out) - _lightness(photo)).abs().mean()) < 1.5


def test_palette_of(photo):
    p = I.palette_of(photo)
    assert p.shape == (6, 3) and p.min() >= 0 and p.max() <= 1


# ---------------------------------------------------------------------------------------------------
# The command line


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pnlib", "recolor", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                               "PNLIB_RUNS_DIR": os.environ["PNLIB_RUNS_DIR"]})


@pytest.fixture(scope="module")
def files(tmp_path_factory, photo):
    d = tmp_path_factory.mktemp("cli")
    Image.fromarray(photo[:37, :53]).save(d / "in.png")
    Image.fromarray(photo[::-1].copy()).save(d / "other.jpg")
    (d / "garbage.jpg").write_bytes(b"\x13\x37 this is not a jpeg" * 20)
    (d / "notackpt.pt").write_text("hello")
    return d


def _one_error_line(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_cli_writes_a_png_of_the_same_size(files, ckpt):
    r = _cli("in.png", "--palette", PALETTE, "-o", "out.png", "--checkpoint", ckpt, cwd=files)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "out.png" in r.stdout
    with Image.open(files / "out.png") as im:
        assert im.format == "PNG" and im.size == (53, 37) and im.mode == "RGB"


def test_cli_palette_from(files, ckpt):
    r = _cli("in.png", "--palette-from", "other.jpg", "-o", "from.png", "--checkpoint", ckpt, cwd=files)
    assert r.returncode == 0, r.stderr
    with Image.open(files / "from.png") as im:
        assert im.size == (53, 37)


def test_cli_errors(files, ckpt):
    line = _one_error_line(_cli("missing.jpg", "--palette", PALETTE, "-o", "x.png", "--checkpoint", ckpt,
                                cwd=files))
    assert "missing.jpg" in line and "not found" in line
    line = _one_error_line(_cli("garbage.jpg", "--palette", PALETTE, "-o", "x.png", "--checkpoint", ckpt,
                                cwd=files))
    assert "garbage.jpg" in line and "unreadable" in line
    line = _one_error_line(_cli("in.png", "--palette", "#12345,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee",
                                "-o", "x.png", "--checkpoint", ckpt, cwd=files))
    assert "entry 1" in line and "#12345" in line
    line = _one_error_line(_cli("in.png", "--palette", PALETTE, "-o", "x.png", "--checkpoint", "notackpt.pt",
                                cwd=files))
    assert "notackpt.pt" in line and "not a readable pnlib checkpoint" in line
    line = _one_error_line(_cli("in.png", "--palette", PALETTE, "-o", "no/such/dir/x.png", "--checkpoint", ckpt,
                                cwd=files))
    assert "cannot write" in line and "does not exist" in line
    assert not (files / "x.png").exists()


def test_cli_missing_shipped_checkpoint(monkeypatch, tmp_path, files, capsys):
    monkeypatch.setattr(I, "SHIPPED", tmp_path / "palettenet.pt")
    argv = ["recolor", str(files / "in.png"), "--palette", PALETTE, "-o", str(tmp_path / "o.png"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "shipped checkpoint" in err and "python -m pnlib train" in err


def test_recolor_palettes_equals_recolor(model, photo):
    """FE once, RD per palette (eq. 2), in batches: the same pixels as one recolor per palette."""
    img = photo[:37, :53]
    palettes = [PALETTE, MODERATE, "navy teal gold coral ivory black"]
    many = I.recolor_palettes(img, palettes, model=model, batch=2)
    assert many.shape == (3, 37, 53, 3) and many.dtype == np.uint8
    for k, P in enumerate(palettes):
        assert np.abs(many[k].astype(int) - I.recolor(img, P, model=model)).max() <= 1


def test_bench_recolor_prints_its_line(capsys):
    """A smoke test of the benchmark (the numbers themselves are printed, never asserted)."""
    res = bench_recolor(sizes=((32, 48),), repeat=1)
    assert res[0]["size"] == (32, 48) and res[0]["seconds"] > 0
    assert "recolor 32x48 (2 threads):" in capsys.readouterr().out


def test_bench_recolor_prints_the_ratio_to_chang(capsys):
    """At the paper's 432×288 the benchmark also times Chang et al. on the same photo and palette, like for
    like (both from the photo; both given P_s and the paired target), and prints both ratios."""
    from pnlib.bench import _versus_chang

    res = _versus_chang(threads=2, repeat=1, rounds=1)
    out = capsys.readouterr().out
    assert "versus Chang et al. on the same 432x288 photo, from the photo" in out and out.count("ours/theirs") == 2
    assert set(res) == {"ours_from_the_photo", "theirs_from_the_photo", "ours_given_P_s", "theirs_given_P_s"}
    assert all(v > 0 for v in res.values())


@pytest.mark.parametrize("head", ["direct", "affine", "palette", "shipped"])
def test_palette_preview_at_full_size_equals_recolor(photo, head):
    """PalettePreview (the sliders' maths, no widgets): FE once, then RD per palette; at the photo's own
    size (nothing to upsample) it gives recolor's pixels. The palette head (ours, the shipped model's)
    reads the photo's P_s in both (palette_of); the sliders keep the palette's order (match=False)."""
    if head == "shipped" and not I.SHIPPED.is_file():
        pytest.skip("no shipped checkpoint (pnlib/checkpoints/palettenet.pt)")
    torch.manual_seed(0)
    G = I.load_model(device="cpu") if head == "shipped" else PaletteNet(8, head).eval()
    preview = I.PalettePreview(I.load_image(photo), G, preview=max(photo.shape[:2]))
    assert preview.preview_size == preview.size == photo.shape[:2]
    for P in (PALETTE, MODERATE):
        out = preview.render(I.palette_lab_norm(P))
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - I.recolor(photo, P, model=G, match=False)).max() <= 1
