"""The palette head (ours): palette correspondence, its closed forms, recolor's matching, the new metrics."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data, transform

import pnlib
from pnlib import evaluate as E
from pnlib.color import denormalize_lab, normalize_lab, rgb_to_lab
from pnlib.correspondence import PaletteTransfer
from pnlib.data import PairSampler, load_pairs, load_split, split_pairs
from pnlib.metrics import palette_distance, stray_edges
from pnlib.model import PaletteNet, apply_affine
from pnlib.palette import extract_palette, match_palette


def lab_norm(rgb, dim=-1):
    return normalize_lab(rgb_to_lab(rgb, dim=dim), dim=dim)


@pytest.fixture(scope="module")
def model():
    """A palette-head model whose weight corrections are random, not zero: tests hold for any weights."""
    torch.manual_seed(0)
    G = PaletteNet(8, "palette").eval()
    with torch.no_grad():
        for p in G.decoder.to_ab.parameters():
            p.normal_(0, 0.3)
    return G


@pytest.fixture(scope="module")
def photo():
    return (transform.resize(data.astronaut(), (64, 96), anti_aliasing=True) * 255).round().astype(np.uint8)


def test_own_palette_gives_the_source_back_for_any_weights(model):
    I_s = lab_norm(torch.rand(2, 3, 32, 48), dim=1)
    P = lab_norm(torch.rand(2, 6, 3))
    with torch.no_grad():
        ab = model(I_s, P, P)
    torch.testing.assert_close(ab, I_s[:, 1:], atol=1e-5, rtol=0)


def test_palette_head_needs_the_source_palette(model):
    I_s, P = lab_norm(torch.rand(1, 3, 32, 48), dim=1), lab_norm(torch.rand(1, 6, 3))
    with pytest.raises(ValueError, match="source palette P_s"):
        model(I_s, P)


def test_each_entry_lands_exactly_on_its_target():
    """A pixel of colour P_s,k with all its weight on entry k becomes P_t,k: T_k(p_s,k) = p_t,k."""
    tr = PaletteTransfer()
    P_s, P_t = lab_norm(torch.rand(1, 6, 3)), lab_norm(torch.rand(1, 6, 3))
    for k in range(6):
        w = torch.zeros(1, 6, 1, 1)
        w[:, k] = 1
        pix = P_s[0, k].view(1, 3, 1, 1)
        out = apply_affine(tr.affine(w, P_s, P_t), pix[:, 1:])
        torch.testing.assert_close(out.flatten(), P_t[0, k, 1:], atol=1e-5, rtol=0)


def test_a_rotation_of_the_palette_rotates_every_pixel():
    """With ε = 0, P_t = P_s turned by θ in ab (raw units) turns every pixel by θ, whatever the weights."""
    tr = PaletteTransfer(eps=0.0, rho_max=10.0)
    theta = math.radians(70)
    rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    raw_s = torch.cat([torch.full((1, 6, 1), 50.0), torch.randn(1, 6, 2) * 30 + 5], -1)
    raw_t = torch.cat([raw_s[..., :1], raw_s[..., 1:] @ rot.T], -1)
    pix = torch.cat([torch.full((1, 1, 4, 5), 60.0), torch.randn(1, 2, 4, 5) * 40], 1)
    w = torch.rand(1, 6, 4, 5).softmax(1)
    out = apply_affine(tr.affine(w, normalize_lab(raw_s, -1), normalize_lab(raw_t, -1)), normalize_lab(pix)[:, 1:])
    got = denormalize_lab(torch.cat([normalize_lab(pix)[:, :1], out], 1))[:, 1:]
    want = torch.einsum("ij,njhw->nihw", rot, pix[:, 1:])
    torch.testing.assert_close(got, want, atol=1e-3, rtol=0)


def test_recolor_own_palette_returns_the_photo(model, photo):
    own = extract_palette(torch.from_numpy(photo).permute(2, 0, 1).float() / 255)
    out = pnlib.recolor(photo, own, model=model)
    assert np.abs(out.astype(int) - photo.astype(int)).max() <= 1


def test_recolor_matches_a_palette_in_any_order(model, photo):
    pal = torch.tensor([[0.1, 0.2, 0.6], [0.9, 0.8, 0.2], [0.2, 0.6, 0.3], [0.8, 0.3, 0.3],
                        [0.5, 0.5, 0.5], [0.95, 0.95, 0.9]])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    a = pnlib.recolor(photo, pal, model=model)
    assert np.array_equal(a, pnlib.recolor(photo, pal[perm], model=model))
    assert not np.array_equal(pnlib.recolor(photo, pal, model=model, match=False),
                              pnlib.recolor(photo, pal[perm], model=model, match=False))


def test_recolor_palettes_equals_recolor_with_the_palette_head(model, photo):
    pals = ["#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee", "#03045e,#0077b6,#00b4d8,#90e0ef,#caf0f8,#ffffff"]
    many = pnlib.inference.recolor_palettes(photo, pals, model=model)
    for i, p in enumerate(pals):
        assert np.abs(many[i].astype(int) - pnlib.recolor(photo, p, model=model).astype(int)).max() <= 1


def test_match_palette_pairs_each_colour_with_its_nearest():
    src = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1],
                        [0.5, 0.5, 0.5], [0.05, 0.05, 0.05]])
    near = (src + 0.04).clamp(0, 1)
    torch.testing.assert_close(match_palette(src, near.flip(0)), near)


def test_palette_distance_at_equal_lightness_ignores_L():
    rgb = torch.rand(6, 3)
    lab = rgb_to_lab(rgb.double(), dim=-1)
    lighter = lab.clone()
    lighter[:, 0] = (lighter[:, 0] + 15).clamp(max=100)
    from pnlib.color import lab_to_rgb
    other = lab_to_rgb(lighter, dim=-1, clip=False)
    ok = ((other >= 0) & (other <= 1)).all(-1)
    a, b = rgb[ok], other[ok].float()
    assert palette_distance(a, b) > 3
    assert palette_distance(a, b, equal_lightness=True) < 0.5  # only the gamut round trip is left


def test_stray_edges_sees_posterisation_and_not_a_smooth_recolouring():
    """A smooth ab ramp recoloured smoothly has no stray pixel; quantised into bands (posterised), each
    band edge is a column of stray pixels: the output jumps where the source changes slowly."""
    H, W = 48, 64
    ramp = torch.linspace(-30, 30, W).expand(H, W)
    src = torch.stack([torch.full((H, W), 60.0), ramp, torch.zeros(H, W)])[None].clone()
    src[:, 0, 16:32, 20:40] = 30.0                      # a dark square: the source's only strong edge
    smooth = src.clone()
    smooth[:, 2] = 0.5 * ramp                          # a different colour, varying just as smoothly
    banded = src.clone()
    banded[:, 1] = torch.round(ramp / 15) * 15         # four flat bands
    s_smooth, s_banded = stray_edges(smooth, src), stray_edges(banded, src)
    assert stray_edges(src, src) == 0 and s_smooth == 0
    assert s_banded >= 3 * H / (H * W) * 0.9   # three band edges, each a column of stray pixels


def test_sampler_source_palette_is_the_target_palette_at_equal_shifts():
    train, _ = split_pairs(load_pairs("bundled"))
    s = PairSampler(train, size=(32, 48), batch_size=8, seed=3, jitter=0.3, source_palette=True)
    b = s.sample(with_o=False)
    assert b["P_s"].shape == (8, 6, 3)
    same = b["shift_s"] == b["shift_t"]
    torch.testing.assert_close(b["P_s"][same], b["P_t"][same])
    # P_s is the jittered palette shifted by s: the same shift of I_s's crop (checked via its hue rotation)
    diff = ~same
    if diff.any():
        assert not torch.allclose(b["P_s"][diff], b["P_t"][diff])


def test_load_split_joins_sources_split_each_on_its_own(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for folder, n in (("a", 4), ("b", 5)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / folder / f"p{i}.png")
    data = f"{tmp_path / 'a'},{tmp_path / 'b'}"
    train, val = load_split(data, cache_dir=tmp_path / "cache")
    assert len(train) + len(val) == 9
    assert {p.name.split("/")[0] for p in train + val} == {"a", "b"}
    for folder in ("a", "b"):
        t, v = split_pairs(load_pairs(tmp_path / folder, cache_dir=tmp_path / "cache"))
        assert sorted(f"{folder}/{p.name}" for p in v) == sorted(p.name for p in val if p.name.startswith(folder))
    with pytest.raises(FileNotFoundError, match="no photo folder at"):
        load_split(f"bundled,{tmp_path / 'missing'}")


def test_evaluate_own_palette_row(model):
    res = E.evaluate(model, size=(32, 48), n_random=1, n_photo=1)
    own = res["own_palette"]["methods"]
    assert own["identity"]["mean_de00"] == 0
    assert own["ours"]["mean_de00"] < 0.5
    b = res["protocol_b"]["methods"]
    for m in E.methods_b("ours"):
        assert 0 <= b[m]["stray_edges"] <= 1
        # CIEDE2000's chroma and hue terms do not depend on L: dropping ΔL can only lower each pair's cost
        assert b[m]["adherence_equal_L"] <= b[m]["adherence"] + 1e-9
    assert "own: ΔE00 to source" in E.to_markdown(res)


def test_export_names_every_data_source(tmp_path):
    """The shipped checkpoint's JSON says which photos trained it: each source, with its photo count."""
    import json

    from PIL import Image

    from pnlib import train as T
    from pnlib.checkpoint import checkpoint_path, export_model
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    T.train("ci", out=tmp_path / "run", progress=False, steps1=2, steps2=0, data=f"bundled,{folder}")
    exported = export_model(checkpoint_path(tmp_path / "run"), tmp_path / "m.pt")
    info = json.loads(exported.with_suffix(".json").read_text())
    assert [(s["name"], s["photos"]) for s in info["data_sources"]] == [("bundled", 8), ("mine", 3)]


def test_affine_maps_in_raw_and_normalised_units_agree():
    """(A, β) on raw ab and its normalised form map the same colours (both directions of the conversion)."""
    from pnlib.correspondence import _affine_to_normalised, affine_to_raw
    raw_t = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    norm_t = _affine_to_normalised(*raw_t.unbind(1))
    torch.testing.assert_close(affine_to_raw(norm_t), raw_t)
    lab = torch.cat([torch.full((2, 1, 3, 4), 50.0), torch.randn(2, 2, 3, 4) * 40], 1).double()
    want = apply_affine(raw_t, lab[:, 1:])                                    # in raw units
    got = apply_affine(norm_t, normalize_lab(lab)[:, 1:])                     # in normalised units
    torch.testing.assert_close(denormalize_lab(torch.cat([normalize_lab(lab)[:, :1], got], 1))[:, 1:], want)


def test_cli_keep_order(model, photo, tmp_path, save_model):
    """`recolor --keep-order` is recolor(match=False): a shuffled palette then gives another picture."""
    from PIL import Image

    from pnlib.__main__ import main
    ck = save_model(model, tmp_path / "m.pt")
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    pal = "#1d3557,#e63946,#a8dadc,#f1faee,#457b9d,#2a9d8f"
    shuffled = ",".join(reversed(pal.split(",")))
    outs = {}
    runs = (("a", pal, []), ("b", shuffled, []), ("c", pal, ["--keep-order"]), ("d", shuffled, ["--keep-order"]))
    for name, p, extra in runs:
        out = tmp_path / f"{name}.png"
        assert main(["recolor", str(src), "--palette", p, "-o", str(out), "--checkpoint", str(ck)] + extra) == 0
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    assert np.array_equal(outs["a"], outs["b"]) and not np.array_equal(outs["c"], outs["d"])


def test_colour_guide_keeps_a_chroma_only_edge():
    """Red beside green at one lightness: guided by colour (inference) the weights keep their step at the
    border; guided by L alone (training, cheaper) they are blurred across it."""
    H, W = 64, 96
    lab = torch.zeros(1, 3, H, W)
    lab[:, 0] = 50.0
    lab[:, 1, :, : W // 2], lab[:, 1, :, W // 2:] = 60.0, -60.0            # a* : red | green
    I_s = normalize_lab(lab)
    w = torch.zeros(1, 6, H, W)
    w[:, 0, :, : W // 2], w[:, 1, :, W // 2:] = 1.0, 1.0
    tr = PaletteTransfer(radius=1 / 24)                                      # r = 4 px
    err_colour = (tr.eval().smooth(w, I_s) - w).abs().max()
    err_L = (tr.train().smooth(w, I_s) - w).abs().max()
    assert err_colour < 0.1 and err_L > 0.3


@pytest.mark.parametrize("r", [1, 2, 5, 8, 9, 12])
def test_box_mean_is_the_mean_over_the_clipped_window(r):
    """Both ways of summing (shifted copies for small r, summed-area tables beyond SHIFTED_MAX_R) equal
    torch's average pooling that counts only the pixels inside the image."""
    from pnlib.correspondence import SHIFTED_MAX_R, box_mean
    assert SHIFTED_MAX_R in range(1, 12)
    x = torch.rand(2, 3, 23, 31, dtype=torch.float64, requires_grad=True)
    ref = F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    out = box_mean(x, r)
    torch.testing.assert_close(out, ref)
    g, = torch.autograd.grad(out.sum(), x)
    g_ref, = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g, g_ref)


def _guided_reference(p, guide, r, eps):
    """He et al. 2010 written out independently: per-pixel (Σ + εU)⁻¹ cov(I, p) by torch.linalg.solve over
    clipped windows (avg_pool2d); for r >= 2 on the half-size grid with r // 2, the coefficients' means
    upsampled (He and Sun 2015)."""
    H, W = p.shape[-2:]
    f = 2 if r >= 2 else 1
    I, q = (F.avg_pool2d(x, f) for x in (guide, p)) if f > 1 else (guide, p)
    r = max(1, r // f)
    mean = lambda x: F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)  # noqa: E731
    C = I.shape[1]
    mI, mp = mean(I), mean(q)
    cov = torch.stack([torch.stack([mean(I[:, i:i + 1] * I[:, j:j + 1])[:, 0] - mI[:, i] * mI[:, j]
                                    for j in range(C)], -1) for i in range(C)], -2)      # (N, h, w, C, C)
    cross = torch.stack([mean(I[:, i:i + 1] * q) - mI[:, i:i + 1] * mp for i in range(C)], -1)  # (N, K, h, w, C)
    a = torch.linalg.solve((cov + eps * torch.eye(C, dtype=p.dtype))[:, None], cross[..., None])[..., 0]
    b = mp - (a * mI.permute(0, 2, 3, 1)[:, None]).sum(-1)
    up = lambda x: F.interpolate(mean(x), size=(H, W), mode="bilinear", align_corners=False)  # noqa: E731
    a = torch.stack([up(a[..., i]) for i in range(C)], -1)
    return (a * guide.permute(0, 2, 3, 1)[:, None]).sum(-1) + up(b)


@pytest.mark.parametrize("r, C", [(1, 3), (3, 3), (4, 1), (6, 3)])
def test_guided_filter_equals_he_et_al(r, C):
    from pnlib.correspondence import guided_filter
    torch.manual_seed(r)
    guide = torch.rand(2, C, 30, 44, dtype=torch.float64)
    p = torch.rand(2, 6, 30, 44, dtype=torch.float64).softmax(1)
    out = guided_filter(p, guide, r, 1e-2)
    torch.testing.assert_close(out, _guided_reference(p, guide, r, 1e-2), atol=1e-9, rtol=0)
    torch.testing.assert_close(out.sum(1), torch.ones(2, 30, 44, dtype=torch.float64))   # Σ_k w_k = 1 kept


def test_transfer_takes_smaller_corrections_up_to_the_photo(model):
    """RD run on a half-size copy (recolor's net_scale): its corrections are upsampled to the photo's size,
    the prior and the softmax taken there, and the smoothing window is at least two cells of RD's grid."""
    tr = model.decoder.transfer
    I_s = lab_norm(torch.rand(1, 3, 48, 72), dim=1)
    P_s, P_t = lab_norm(torch.rand(1, 6, 3)), lab_norm(torch.rand(1, 6, 3))
    corr = torch.randn(1, 6, 24, 36)
    up = F.interpolate(corr, size=(48, 72), mode="bilinear", align_corners=False)
    w = tr.smooth((tr.prior_logits(I_s, P_s) + up).softmax(1), I_s, 4)   # 72/144 rounds to 1 px: 4 wins
    torch.testing.assert_close(tr(corr, I_s, P_s, P_t), tr.affine(w, P_s, P_t))
    same = torch.randn(1, 6, 48, 72)                                      # at the photo's size: as in training
    w = tr.smooth((tr.prior_logits(I_s, P_s) + same).softmax(1), I_s)
    torch.testing.assert_close(tr(same, I_s, P_s, P_t), tr.affine(w, P_s, P_t))


def test_recolor_net_scale(model, photo):
    """net_scale=1 is the model's own forward at the working size (what the evaluation scores); the default
    (RD at half size) still hands the photo back for its own palette; a bad net_scale names itself."""
    from pnlib.color import lab_to_rgb
    P = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"
    rgb = pnlib.inference.load_image(photo)
    P_t, P_s = pnlib.inference.target_and_source(rgb, P, model)
    with torch.inference_mode():
        lab = denormalize_lab(model.recolor_any_size(lab_norm(rgb[None], dim=1), P_t[None], P_s[None]))
    ref = (lab_to_rgb(lab, clip=True)[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(pnlib.recolor(photo, P, model=model, net_scale=1) - ref).max() <= 1
    half = pnlib.recolor(photo, P, model=model)
    assert not np.array_equal(half, pnlib.recolor(photo, P, model=model, net_scale=1))
    own = pnlib.palette_of(photo)
    assert np.abs(pnlib.recolor(photo, own, model=model).astype(int) - photo).max() <= 1
    with pytest.raises(ValueError, match="net_scale"):
        pnlib.recolor(photo, P, model=model, net_scale=0)


@pytest.mark.skipif(not pnlib.inference.SHIPPED.is_file(), reason="no shipped checkpoint")
def test_shipped_model_at_half_size_stays_near_its_full_size_self():
    """The shipped palette head, RD at half size against RD at the working size, on the paper's 288×432:
    the same picture up to a few levels (the held-out measurement is in benchmarks/RESULTS.md)."""
    img = (transform.resize(data.coffee(), (288, 432), anti_aliasing=True) * 255).round().astype(np.uint8)
    P = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"
    G = pnlib.inference.cached_model(None, "cpu")
    diff = np.abs(pnlib.recolor(img, P, model=G).astype(int) - pnlib.recolor(img, P, model=G, net_scale=1))
    assert diff.mean() < 3, diff.mean()
