"""pnlib.color against scikit-image, the independent reference (issue: foundation)."""
import numpy as np
import pytest
import torch
from skimage import color as skc

from pnlib import color as C


def _random_rgb(n=12000, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.random((n, 3))
    edges = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1],
                      [1, 0, 1], [0.5, 0.5, 0.5], [0.2, 0.2, 0.2], [0.04045, 0.04045, 0.04045],
                      [0.003, 0.003, 0.003], [1, 1, 0.999999]], dtype=np.float64)
    return np.concatenate([edges, rgb])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-4), (torch.float32, 2e-3)])
def test_rgb_to_lab_matches_skimage(dtype, tol):
    rgb = _random_rgb()
    ref = skc.rgb2lab(rgb[None])[0]
    ours = C.rgb_to_lab(torch.tensor(rgb, dtype=dtype), dim=-1).double().numpy()
    assert np.abs(ours - ref).max() <= tol


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-4), (torch.float32, 2e-3)])
def test_lab_to_rgb_matches_skimage(dtype, tol):
    lab = skc.rgb2lab(_random_rgb()[None])[0]
    ref = skc.lab2rgb(lab[None])[0]
    ours = C.lab_to_rgb(torch.tensor(lab, dtype=dtype), dim=-1).double().numpy()
    # compare in LAB units, as the issue states the tolerance
    assert np.abs(skc.rgb2lab(ours[None])[0] - skc.rgb2lab(ref[None])[0]).max() <= tol
    assert np.abs(ours - ref).max() <= tol


def test_lab_to_rgb_unclipped_shows_out_of_gamut():
    lab = torch.tensor([[50.0, 120.0, 0.0]], dtype=torch.float64)
    raw = C.lab_to_rgb(lab, dim=-1, clip=False)
    assert raw.max() > 1 or raw.min() < 0
    assert torch.equal(C.lab_to_rgb(lab, dim=-1, clip=True), raw.clamp(0, 1))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_hsv_roundtrip_matches_skimage(dtype, tol):
    rgb = _random_rgb()
    ref = skc.rgb2hsv(rgb[None])[0]
    ours = C.rgb_to_hsv(torch.tensor(rgb, dtype=dtype), dim=-1).double().numpy()
    assert np.abs(ours - ref).max() <= max(tol, 1e-6)
    back = C.hsv_to_rgb(torch.tensor(ref, dtype=dtype), dim=-1).double().numpy()
    assert np.abs(back - skc.hsv2rgb(ref[None])[0]).max() <= max(tol, 1e-6)
    # greys: hue undefined -> 0, saturation 0
    grey = torch.tensor([[0.3, 0.3, 0.3], [0, 0, 0], [1, 1, 1]], dtype=dtype)
    hsv = C.rgb_to_hsv(grey, dim=-1)
    assert torch.all(hsv[:, :2] == 0)


def test_channel_dim_and_batch_agree():
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    a = C.rgb_to_lab(rgb)  # dim=-3
    b = C.rgb_to_lab(rgb.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
    torch.testing.assert_close(a, b)


def test_normalisation_ranges_and_roundtrip():
    lo = torch.tensor([0.0, -86.185, -107.863], dtype=torch.float64)
    hi = torch.tensor([100.0, 98.254, 94.482], dtype=torch.float64)
    assert torch.allclose(C.normalize_lab(lo, dim=-1), -torch.ones(3, dtype=torch.float64))
    assert torch.allclose(C.normalize_lab(hi, dim=-1), torch.ones(3, dtype=torch.float64))
    lab = C.rgb_to_lab(torch.rand(4, 3, 6, 6, dtype=torch.float64))
    n = C.normalize_lab(lab)
    assert n.min() >= -1 and n.max() <= 1
    torch.testing.assert_close(C.denormalize_lab(n), lab)


def _skimage_eq10(rgb, deg):
    """Eq. (10) written with skimage only: the independent reference."""
    L = skc.rgb2lab(rgb)[..., :1]
    hsv = skc.rgb2hsv(rgb)
    hsv[..., 0] = (hsv[..., 0] + deg / 360.0) % 1.0
    ab = skc.rgb2lab(skc.hsv2rgb(hsv))[..., 1:]
    return np.concatenate([L, ab], -1)


def test_hue_shift_matches_skimage_eq10_and_keeps_L():
    rgb = np.random.default_rng(1).random((16, 16, 3))
    t = torch.tensor(rgb.transpose(2, 0, 1)[None], dtype=torch.float64)
    for deg in (20, 140, 300):
        ours = C.hue_shift(t, deg)[0].permute(1, 2, 0).numpy()
        assert np.abs(ours - _skimage_eq10(rgb, deg)).max() <= 1e-3
        assert torch.equal(C.hue_shift(t, deg)[:, :1], C.rgb_to_lab(t)[:, :1])  # L kept exactly


def test_hue_shift_identity_at_0_and_360_and_per_sample_angles():
    t = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    lab = C.rgb_to_lab(t)
    torch.testing.assert_close(C.hue_shift(t, 0), lab, atol=1e-8, rtol=0)
    torch.testing.assert_close(C.hue_shift(t, 360), lab, atol=1e-8, rtol=0)
    per = C.hue_shift(t, torch.tensor([0.0, 40.0, 200.0]))
    for i, d in enumerate((0.0, 40.0, 200.0)):
        torch.testing.assert_close(per[i], C.hue_shift(t[i:i + 1], d)[0])
    with pytest.raises(ValueError, match="angles"):
        C.hue_shift(t, torch.tensor([1.0, 2.0]))


def test_palette_shift_equals_image_shift():
    pal = torch.rand(2, 6, 3, dtype=torch.float64)
    as_image = pal.permute(0, 2, 1)[..., None]  # (N, 3, 6, 1)
    for deg in (20, 180):
        p = C.hue_shift(pal, deg, dim=-1)
        img = C.hue_shift(as_image, deg)[..., 0].permute(0, 2, 1)
        torch.testing.assert_close(p, img)


def test_naive_shift_distorts_L_on_a_photo_and_eq10_does_not():
    from skimage import data
    rgb = torch.tensor(data.astronaut() / 255.0).permute(2, 0, 1)[None].float()
    L = C.rgb_to_lab(rgb)[:, 0]
    naive = (C.naive_hue_shift(rgb, 180)[:, 0] - L).abs().mean()
    ours = (C.hue_shift(rgb, 180)[:, 0] - L).abs().mean()
    assert naive > 1.0
    assert ours == 0.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="3 channels"):
        C.rgb_to_lab(torch.rand(2, 4, 5, 5))
    with pytest.raises(TypeError, match="float"):
        C.rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
