"""pnlib.metrics: ΔE00 (display sRGB), luminance error, palette distance and adherence."""
import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000

from pnlib.color import lab_to_rgb, rgb_to_lab
from pnlib.metrics import (
    delta_e00,
    display_lab,
    luminance_error,
    mean_delta_e00,
    palette_adherence,
    palette_distance,
    per_image_delta_e00,
)
from pnlib.palette import parse_palette

SIX = ["#e63946", "#f1faee", "#a8dadc", "#457b9d", "#1d3557", "#ffb703"]

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", Table 1: (Lab 1, Lab 2, ΔE00).
SHARMA = {
    1: ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    7: ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    18: ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    19: ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    20: ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
}


def pixel(lab, dtype=torch.float64):
    """One LAB colour as a (1, 3, 1, 1) image."""
    return torch.tensor(lab, dtype=dtype).reshape(1, 3, 1, 1)


def in_gamut(lab) -> bool:
    rgb = lab_to_rgb(torch.tensor(lab, dtype=torch.float64), dim=-1, clip=False)
    return bool(((rgb >= 0) & (rgb <= 1)).all())


def test_identical_images_give_zero():
    lab = rgb_to_lab(torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)))
    de = delta_e00(lab, lab.clone())
    assert de.shape == (2, 5, 7) and de.dtype == lab.dtype
    assert float(de.abs().max()) < 1e-4
    assert mean_delta_e00(lab, lab) < 1e-4
    assert per_image_delta_e00(lab, lab).shape == (2,)


def test_sharma_out_of_gamut_pair_plain_formula():
    a, b, want = SHARMA[1]
    assert not in_gamut(a) and not in_gamut(b)   # so the display mapping would change them
    assert mean_delta_e00(pixel(a), pixel(b), display=False) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("pair", [7, 18, 19, 20])
def test_sharma_in_gamut_pairs_through_display(pair):
    a, b, want = SHARMA[pair]
    assert in_gamut(a) and in_gamut(b)
    assert mean_delta_e00(pixel(a), pixel(b)) == pytest.approx(want, abs=1e-3)
    assert mean_delta_e00(pixel(a, torch.float32), pixel(b, torch.float32)) == pytest.approx(want, abs=2e-3)


def test_out_of_gamut_scores_as_displayed():
    lab = pixel(SHARMA[1][0])
    shown = display_lab(lab)
    assert float((shown - lab).abs().max()) > 1.0   # clipping moved it
    assert mean_delta_e00(lab, shown) < 1e-4         # but both display the same
    assert mean_delta_e00(lab, shown, display=False) > 1.0


def test_channel_axis_last():
    a, b, want = SHARMA[20]
    colours_a = torch.tensor([a, a], dtype=torch.float64)
    colours_b = torch.tensor([b, a], dtype=torch.float64)
    de = delta_e00(colours_a, colours_b, dim=-1)
    assert de.shape == (2,)
    assert de.tolist() == pytest.approx([want, 0.0], abs=1e-3)


def test_per_image_mean():
    a, b, want = SHARMA[7]
    img_a = pixel(a).expand(2, 3, 2, 2).clone()
    img_b = img_a.clone()
    img_b[1, :, 0, 0] = torch.tensor(b, dtype=torch.float64)   # one of image 1's four pixels differs
    per = per_image_delta_e00(img_a, img_b)
    assert per.tolist() == pytest.approx([0.0, want / 4], abs=1e-3)
    assert mean_delta_e00(img_a, img_b) == pytest.approx(want / 8, abs=1e-3)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one shape"):
        delta_e00(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 3))


def test_luminance_error_hand_values():
    src = pixel((50.0, 10.0, -5.0)).expand(1, 3, 2, 2).clone()
    out = src.clone()
    out[:, 0] = torch.tensor([[53.0, 47.0], [50.0, 50.0]])   # |ΔL| = 3, 3, 0, 0
    out[:, 1:] += 20.0                                       # chroma changes do not count
    assert luminance_error(out, src) == pytest.approx(1.5)
    out[:, 0] = 53.0
    assert luminance_error(out, src) == pytest.approx(3.0)
    # display=True measures the displayed L: an in-gamut pair is unchanged by it.
    assert luminance_error(pixel((53.0, 0, 0)), pixel((50.0, 0, 0)), display=True) == pytest.approx(3.0, abs=1e-3)
    far = pixel((50.0, 0.0, -120.0))   # out of gamut: the clipped, displayed colour has another L
    assert luminance_error(far, pixel((50.0, 0, 0))) == 0.0
    assert luminance_error(far, pixel((50.0, 0, 0)), display=True) > 1.0


def test_palette_distance_permutation_is_zero():
    p = parse_palette(SIX)
    perm = p[torch.tensor([3, 0, 5, 1, 4, 2])]
    assert palette_distance(p, perm) == pytest.approx(0.0, abs=1e-6)
    assert palette_distance(p, p.numpy()) == pytest.approx(0.0, abs=1e-6)


def test_palette_distance_one_colour_changed():
    p = parse_palette(SIX)
    q = p.clone()
    q[2] = parse_palette(["#ff00ff"] * 6)[0]
    q = q[torch.tensor([5, 4, 3, 2, 1, 0])]   # order must not matter
    lab_old = rgb_to_lab(p[2].double(), dim=-1).numpy()
    lab_new = rgb_to_lab(q[3].double(), dim=-1).numpy()
    one = float(deltaE_ciede2000(lab_old, lab_new))
    # Magenta is far from every colour of p, so the best matching keeps the other five pairs exact.
    assert palette_distance(p, q) == pytest.approx(one / 6, abs=1e-4)


def test_palette_distance_rejects_bad_shapes():
    with pytest.raises(ValueError):
        palette_distance(torch.rand(6, 3), torch.rand(5, 3))
    with pytest.raises(ValueError):
        palette_distance(torch.rand(6), torch.rand(6))


def test_palette_adherence_flat_regions():
    p = parse_palette(SIX)
    img = p.T.reshape(3, 6, 1).expand(3, 6, 8).repeat_interleave(4, dim=1).contiguous()   # 6 flat bands
    assert palette_adherence(img, p) < 1.0
    assert palette_adherence(img, p[torch.tensor([1, 0, 2, 3, 5, 4])]) < 1.0
    other = parse_palette(["#000000", "#ffffff", "red", "lime", "blue", "yellow"])
    assert palette_adherence(img, other) > 10.0


def test_numpy_inputs():
    a, b, want = SHARMA[19]
    arr_a = np.array(a, dtype=np.float64).reshape(3, 1, 1)
    arr_b = np.array(b, dtype=np.float64).reshape(3, 1, 1)
    assert float(delta_e00(arr_a, arr_b, dim=0)) == pytest.approx(want, abs=1e-3)
