"""pnlib.regions (ours, not in the paper): per-region training tuples for the palette head."""
import pytest
import torch

from pnlib import data as D
from pnlib import regions as R
from pnlib.color import hue_shift, normalize_lab, rgb_to_lab

SIZE = (32, 48)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return D.split_pairs(D.load_pairs("bundled", cache_dir=tmp_path_factory.mktemp("palettes")))


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_region_tuples(split, jitter):
    """regions (ours): each palette entry's region gets its own hue shift; L is the source's; P_t,k is entry
    k shifted by its own angle; the other rows, and I_s everywhere, are the paper's tuples unchanged."""
    train, _ = split
    kw = dict(size=SIZE, batch_size=12, seed=3, jitter=jitter, source_palette=True)
    b = D.PairSampler(train, extra=R.RegionTuples(0.5), **kw).sample()
    plain = D.PairSampler(train, **kw).sample()
    assert "regions" not in plain and "shift_tk" not in plain
    rows = b["regions"]
    assert rows.dtype == torch.bool and rows.any() and (~rows).any()
    assert b["shift_tk"].shape == (12, 6) and set(b["shift_tk"].flatten().tolist()) <= set(map(float, D.SHIFTS))
    for k in ("I_s", "P_s", "rgb", "shift_s", "shift_t", "j"):   # the region draws come last
        torch.testing.assert_close(b[k], plain[k], atol=0, rtol=0)
    for k in ("I_t", "P_t"):   # the paper's rows are left as they were
        torch.testing.assert_close(b[k][~rows], plain[k][~rows], atol=0, rtol=0)
        assert (b[k][rows] - plain[k][rows]).abs().amax() > 1e-2
    assert (b["shift_tk"][~rows] == b["shift_t"][~rows, None]).all()
    assert (b["I_t"][:, 0] - b["I_s"][:, 0]).abs().max() <= 1e-4   # eq. (10) per entry: L kept
    assert b["I_t"].min() >= -1 and b["I_t"].max() <= 1
    if not jitter:   # P_t,k = hue_shift(P_j,k, t_k), entry by entry
        for i in rows.nonzero()[:, 0].tolist():
            P_j = train[b["j"][i]].palette
            want = torch.stack([hue_shift(P_j[k], b["shift_tk"][i, k].item(), dim=-1) for k in range(6)])
            torch.testing.assert_close(b["P_t"][i], normalize_lab(want, -1).clamp(-1, 1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="regions"):
        R.RegionTuples(1.5)


def test_region_tuples_shift_two_regions_apart():
    """A two-colour image: each half is hue-shifted by its own entry's angle (away from the seam)."""
    H, W = SIZE
    rgb = torch.zeros(3, 2 * H, 2 * W)
    rgb[:, :, :W] = torch.tensor([0.8, 0.2, 0.2])[:, None, None]   # red left, blue right
    rgb[:, :, W:] = torch.tensor([0.2, 0.3, 0.8])[:, None, None]
    pal = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.3, 0.8], [0.2, 0.8, 0.2], [0.9, 0.9, 0.2],
                        [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    s = D.PairSampler([D.Pair("two", rgb, pal)], size=SIZE, batch_size=8, seed=0, scale=(1.0, 1.0),
                      source_palette=True, extra=R.RegionTuples(1.0))
    b = s.sample()
    assert b["regions"].all()
    apart = 0
    for i in range(8):
        for x in (W // 8, W - 1 - W // 8):   # well inside each half
            px = b["rgb"][i, :, H // 2, x]
            k = int((pal - px).abs().sum(-1).argmin())
            assert k in (0, 1)
            want = normalize_lab(hue_shift(px, b["shift_tk"][i, k].item(), dim=0), 0).clamp(-1, 1)
            torch.testing.assert_close(b["I_t"][i, :, H // 2, x], want, atol=2e-3, rtol=0)
        tk = b["shift_tk"][i, :2]
        if tk[0] != tk[1]:
            apart += 1
            left, right = b["I_t"][i, 1:, H // 2, W // 8], b["I_t"][i, 1:, H // 2, W - 1 - W // 8]
            src_l, src_r = b["I_s"][i, 1:, H // 2, W // 8], b["I_s"][i, 1:, H // 2, W - 1 - W // 8]
            # the two halves did not turn together: not one global shift of the source
            assert not torch.allclose(left - src_l, right - src_r, atol=1e-2)
    assert apart >= 4


def test_region_merge_gives_similar_entries_one_angle(split):
    pal = torch.tensor([[[50.0, 0, 0], [52, 1, 0], [50, 60, 0], [20, 0, -40], [80, 0, 0], [21, 0, -42]]])
    assert R.merged_entries(pal, 0.5).tolist() == [[0, 0, 2, 3, 4, 3]]
    assert R.merged_entries(pal, 0.0).tolist() == [[0, 1, 2, 3, 4, 5]]
    train, _ = split
    b = D.PairSampler(train, size=SIZE, batch_size=8, seed=0, source_palette=True,
                      extra=R.RegionTuples(1.0, merge=0.5)).sample()
    for i in range(8):
        group = R.merged_entries(rgb_to_lab(train[b["j"][i]].palette, dim=-1)[None], 0.5)[0]
        assert torch.equal(b["shift_tk"][i], b["shift_tk"][i][group])


def test_region_weights_are_a_cleaned_up_partition():
    lab = torch.zeros(1, 3, 16, 24)
    lab[:, 0] = 50.0
    lab[:, 1, :, 12:] = 60.0          # two flat regions: a = 0 left, a = 60 right
    lab[:, 1, 4, 4] = 60.0            # a speck of the right one on the left
    pal = torch.tensor([[[50.0, 0.0, 0.0], [50.0, 60.0, 0.0]] + [[50.0, -60.0, 60.0 * k] for k in range(4)]])
    w = R.region_weights(lab, pal, radius=2, blur=2)
    assert w.shape == (1, 6, 16, 24) and (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(1, 16, 24))
    assert w[0, 0, 4, 4] > 0.99                       # the speck joined the region around it
    assert w[0, 0, :, :8].min() > 0.99 and w[0, 1, :, 16:].min() > 0.99
    hard = R.region_weights(lab, pal, radius=0, blur=0)
    assert hard[0, 1, 4, 4] == 1 and set(hard.unique().tolist()) == {0.0, 1.0}


def test_pasted_pairs_turn_each_side_by_its_own_angle(split):
    """PastedPairs (ours): each pixel of I_t is the pasted crop turned by t_A or by t_B (both sides occur),
    and L is the source's."""
    train, _ = split
    b = D.PairSampler(train, size=SIZE, batch_size=6, seed=1, source_palette=True,
                      extra=R.PastedPairs(1.0)).sample()
    assert b["pasted"].all() and b["shift_sides"].shape == (6, 2)
    assert (b["I_t"][:, 0] - b["I_s"][:, 0]).abs().max() <= 1e-4
    for i in range(6):
        tA, tB = b["shift_sides"][i].tolist()
        if tA == tB:
            continue
        a, c = (normalize_lab(hue_shift(b["rgb"][i], t, dim=0), 0).clamp(-1, 1) for t in (tA, tB))
        dA, dB = ((b["I_t"][i] - x).abs().amax(0) for x in (a, c))
        assert (torch.minimum(dA, dB) < 1e-3).float().mean() > 0.99
        assert (dA < 1e-3).float().mean() > 0.2 and (dB < 1e-3).float().mean() > 0.2
    with pytest.raises(ValueError, match="pasted"):
        R.PastedPairs(2.0)
