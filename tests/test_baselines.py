"""pnlib.baselines: identity, oracle, Chang et al. 2015 palette extraction and colour transfer, Tan et al. 2018."""
import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from pnlib.baselines import (
    chang_luminance_curve,
    chang_palette,
    chang_recolor,
    chang_target_luminance,
    chang_transfer_lab,
    identity,
    oracle,
    tan_layers,
    tan_palette,
)
from pnlib.color import hue_shift, lab_to_rgb, rgb_to_lab
from pnlib.metrics import delta_e00, mean_delta_e00, palette_distance
from pnlib.palette import parse_palette

SIX = ["#e63946", "#f1faee", "#a8dadc", "#457b9d", "#1d3557", "#ffb703"]
# Source colours with well separated L, and targets (other hues) whose L keep the same order.
SRC = ["#1d3557", "#6b4226", "#2a9d8f", "#e76f51", "#e9c46a", "#f1faee"]
TGT = ["#3d1d57", "#265b6b", "#9d2a6a", "#51c3e7", "#6ae98f", "#eef1fa"]


@pytest.fixture(scope="module")
def chelsea():
    img = resize(data.chelsea(), (60, 90), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def lab(rgb):
    return rgb_to_lab(rgb, dim=-3)


def test_identity_and_oracle(chelsea):
    assert identity(chelsea, parse_palette(SIX)) is chelsea
    torch.testing.assert_close(oracle(chelsea, 40.0), hue_shift(chelsea, 40.0))


def test_chang_palette_shape_order_determinism(chelsea):
    p = chang_palette(chelsea)
    assert p.shape == (6, 3) and p.dtype == torch.float32
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    L = rgb_to_lab(p.double(), dim=-1)[:, 0]
    assert bool((L[1:] >= L[:-1]).all())          # Chang's order: darkest first
    torch.testing.assert_close(chang_palette(chelsea), p)
    assert chang_palette(chelsea, k=4).shape == (4, 3)
    assert chang_palette(chelsea, exclude_black=True).shape == (6, 3)


def test_chang_palette_recovers_flat_colours():
    p = parse_palette(SIX)
    img = p.T.reshape(3, 6, 1).expand(3, 6, 5).repeat_interleave(3, dim=1).contiguous()
    assert palette_distance(chang_palette(img), p) < 0.5


def test_palette_onto_itself_is_identity(chelsea):
    p = chang_palette(chelsea)
    out = chang_recolor(chelsea, p, p)
    assert mean_delta_e00(lab(out), lab(chelsea)) < 0.5


@pytest.mark.parametrize("grid,tol", [(None, 1.0), (16, 4.0)])
def test_palette_colours_map_to_targets(grid, tol):
    src, tgt = parse_palette(SRC), parse_palette(TGT)
    Ls = rgb_to_lab(src.double(), dim=-1)[:, 0]
    Lt = rgb_to_lab(tgt.double(), dim=-1)[:, 0]
    order = torch.argsort(Ls)
    assert bool((Lt[order][1:] >= Lt[order][:-1]).all())   # so the monotonic L fix leaves L' alone
    img = src.T.reshape(3, 1, 6).contiguous()               # the six source colours, one pixel each
    out = chang_recolor(img, src, tgt, grid=grid)
    de = delta_e00(lab(out), lab(tgt.T.reshape(3, 1, 6)), dim=0)
    # Exact evaluation hits every target; the 16³ grid lookup approximates large moves to a few ΔE.
    assert float(de.max()) < tol


def test_target_luminance_hand_values():
    src_L = torch.tensor([10.0, 30.0, 50.0])
    assert chang_target_luminance(src_L, torch.tensor([20.0, 70.0, 60.0])).tolist() == [20.0, 60.0, 60.0]
    # Caller's order is kept: source colour 1 is the lightest.
    out = chang_target_luminance(torch.tensor([10.0, 50.0, 30.0]), torch.tensor([40.0, 20.0, 60.0]))
    assert out.tolist() == [20.0, 20.0, 20.0]
    mono = torch.tensor([5.0, 25.0, 80.0])
    assert chang_target_luminance(src_L, mono).tolist() == mono.tolist()


def test_luminance_transfer_is_monotonic():
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        src_L = torch.rand(6, generator=g, dtype=torch.float64) * 100
        tgt_L = torch.rand(6, generator=g, dtype=torch.float64) * 100
        assert not bool((tgt_L[torch.argsort(src_L)].diff() >= 0).all())   # target order is violated
        sweep = torch.linspace(0, 100, 1001, dtype=torch.float64)
        curve = chang_luminance_curve(sweep, src_L, tgt_L)
        assert bool((curve.diff() >= -1e-9).all())
        assert curve[0] == pytest.approx(0.0) and curve[-1] == pytest.approx(100.0)
    # ... and it passes through the (adjusted) palette points, and so does the full transfer.
    fixed = chang_target_luminance(src_L, tgt_L)
    torch.testing.assert_close(chang_luminance_curve(src_L, src_L, tgt_L), fixed)
    grey = torch.stack([sweep, torch.zeros_like(sweep), torch.zeros_like(sweep)], 1)
    pal_s = torch.stack([src_L, torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)], 1)
    pal_t = torch.stack([tgt_L, torch.full((6,), 20.0, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)], 1)
    assert bool((chang_transfer_lab(grey, pal_s, pal_t)[:, 0].diff() >= -1e-9).all())


def test_grid_lookup_matches_direct_evaluation(chelsea):
    p = chang_palette(chelsea)
    for deg in (60.0, 180.0):
        tgt = lab_to_rgb(hue_shift(p, deg, dim=-1), dim=-1, clip=True)
        direct = chang_recolor(chelsea, p, tgt, grid=None)
        looked_up = chang_recolor(chelsea, p, tgt)
        assert mean_delta_e00(lab(direct), lab(looked_up)) < 1.0


def test_hue_shift_target_beats_identity(chelsea):
    p = chang_palette(chelsea)
    gt = hue_shift(chelsea, 120.0)
    out = chang_recolor(chelsea, p, lab_to_rgb(hue_shift(p, 120.0, dim=-1), dim=-1, clip=True))
    chang_err, ident_err = mean_delta_e00(lab(out), gt), mean_delta_e00(lab(chelsea), gt)
    assert chang_err < 10.0 and ident_err > 2 * chang_err


def test_output_shape_range_and_batch(chelsea):
    p = chang_palette(chelsea)
    tgt = parse_palette(SIX)
    out = chang_recolor(chelsea, p, tgt)
    assert out.shape == chelsea.shape and out.dtype == chelsea.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    batch = torch.stack([chelsea, chelsea.flip(-1)])
    outs = chang_recolor(batch, p, tgt, grid=8)   # a coarse grid: this checks only the batch plumbing
    assert outs.shape == batch.shape
    torch.testing.assert_close(outs[1], chang_recolor(chelsea.flip(-1), p, tgt, grid=8))
    per_sample = chang_recolor(batch, torch.stack([p, p]), torch.stack([tgt, p]), grid=8)
    torch.testing.assert_close(per_sample[1], chang_recolor(chelsea.flip(-1), p, p, grid=8))
    assert chang_recolor(chelsea, SIX, SIX, grid=8).shape == chelsea.shape   # hex palettes are parsed


def test_bad_inputs_raise(chelsea):
    p = parse_palette(SIX)
    with pytest.raises(ValueError):
        chang_recolor(chelsea[0], p, p)
    with pytest.raises(ValueError):
        chang_recolor(chelsea, p, p[:5])
    with pytest.raises(ValueError):
        chang_palette(chelsea[None])


# ------------------------------------------------------------------------------- Tan et al. 2018
def _mixed_image(palette: np.ndarray, H: int = 24, W: int = 36, seed: int = 0):
    """An image whose every pixel is a known convex mix of ``palette`` (k, 3): weights (k, H, W), the
    first k pixels the pure palette colours (so the pixels' hull is exactly the palette's)."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(len(palette), 0.7), size=H * W)
    w[:len(palette)] = np.eye(len(palette))
    img = (w @ palette).T.reshape(3, H, W)
    return torch.from_numpy(img).float(), w.T.reshape(len(palette), H, W)


TETRA = np.array([[0.1, 0.1, 0.1], [0.9, 0.2, 0.1], [0.2, 0.8, 0.2], [0.3, 0.3, 0.9]])


def test_tan_palette_of_a_tetrahedron_is_its_corners():
    img, _ = _mixed_image(TETRA)
    pal = tan_palette(img, k=4)
    d = np.abs(pal.numpy()[:, None] - TETRA[None]).sum(-1)
    assert d.min(1).max() < 1e-5 and sorted(d.argmin(1)) == [0, 1, 2, 3]


def test_tan_recolor_of_a_tetrahedron_is_the_closed_form():
    """Four palette colours have unique mixing weights (barycentric coordinates): the recolouring to any
    new palette is exactly Σ_i w_i P'_i, whatever the RGBXY detour."""
    img, w = _mixed_image(TETRA)
    layers = tan_layers(img, k=4)
    order = np.abs(layers.palette.numpy()[:, None] - TETRA[None]).sum(-1).argmin(1)   # palette i = TETRA[order[i]]
    torch.testing.assert_close(layers.weights, torch.from_numpy(w[order]).float(), atol=1e-4, rtol=0)
    new = np.array([[0.9, 0.9, 0.1], [0.1, 0.5, 0.9], [0.8, 0.1, 0.7], [0.5, 0.5, 0.5]])
    expected = torch.from_numpy(np.einsum("khw,kc->chw", w, new)).float()
    torch.testing.assert_close(layers.recolor(torch.from_numpy(new[order]).float()), expected, atol=1e-4, rtol=0)


def _outside(px: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """How far each colour of ``px`` (N, 3) lies outside the convex hull of ``pal`` (≤ 0: inside)."""
    from scipy.spatial import ConvexHull
    eq = ConvexHull(pal).equations
    return (px @ eq[:, :3].T + eq[:, 3]).max(1)


def test_tan_palette_hull_encloses_a_photo(chelsea):
    """Before the clip to the RGB cube the simplified hull encloses every pixel (the collapses only add
    volume, from a hull of more than six vertices); clipped, it lies in the cube."""
    from scipy.spatial import ConvexHull
    px = chelsea.reshape(3, -1).T.double().numpy()
    assert len(ConvexHull(px).vertices) > 6
    raw = tan_palette(chelsea, clip=False).numpy()
    assert raw.shape == (6, 3) and _outside(px, raw).max() < 1e-9
    pal = tan_palette(chelsea).numpy()
    assert pal.min() >= 0 and pal.max() <= 1
    torch.testing.assert_close(torch.from_numpy(pal).double(), torch.from_numpy(raw).clamp(0, 1), atol=1e-6, rtol=0)


def test_tan_own_palette_gives_the_photo_back(chelsea):
    """With the hull that encloses every pixel the weights mix the palette back into each pixel exactly
    (RGBXY barycentric coordinates, then RGB ones); with the palette clipped to the cube, almost."""
    raw = tan_palette(chelsea, clip=False)
    w = tan_layers(chelsea, palette=raw).weights
    assert w.shape == (6, *chelsea.shape[-2:]) and w.min() >= 0
    torch.testing.assert_close(w.sum(0), torch.ones_like(w[0]))
    torch.testing.assert_close(torch.einsum("khw,kc->chw", w.double(), raw).float(), chelsea, atol=1e-5, rtol=0)
    layers = tan_layers(chelsea)
    assert mean_delta_e00(lab(layers.recolor(layers.palette)), lab(chelsea)) < 0.5    # 0.11 measured
    # A hue shift of the palette moves the photo's hues with it (far from the source, near eq. (10)'s truth).
    shifted = lab_to_rgb(hue_shift(layers.palette, 120.0, dim=-1), dim=-1, clip=True)
    out, truth = lab(layers.recolor(shifted)), hue_shift(chelsea, 120.0)
    assert mean_delta_e00(out, truth) < 0.5 * mean_delta_e00(lab(chelsea), truth)


def test_tan_bad_inputs_raise(chelsea):
    with pytest.raises(ValueError, match="tan_layers wants"):
        tan_layers(chelsea[0])
    with pytest.raises(ValueError, match="target palette has 5 colours"):
        tan_layers(chelsea).recolor(parse_palette(SIX)[:5])


def test_tan_flat_images_come_back():
    """Degenerate hulls (two colours; a grey ramp on one line) are joggled, not a qhull traceback; a
    two-colour image is exactly a mix of its palette."""
    img = torch.zeros(3, 16, 24)
    img[:, :, :12] = 0.3
    img[:, :, 12:] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
    layers = tan_layers(img)
    torch.testing.assert_close(layers.recolor(layers.palette), img, atol=1e-4, rtol=0)
    grey = torch.linspace(0, 1, 16 * 24).reshape(1, 16, 24).expand(3, -1, -1).contiguous()
    layers = tan_layers(grey)
    assert float((layers.recolor(layers.palette) - grey).abs().max()) < 0.01
