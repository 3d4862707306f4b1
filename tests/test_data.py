"""pnlib.data: photo sources, D_orig, the image-level split, the §3.3 tuples (issue: data)."""
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from pnlib import data as D
from pnlib import palette as Pal
from pnlib import photos as Ph
from pnlib.color import hue_shift, normalize_lab, rgb_to_lab

SIX = "#e63946,#f1faee,#a8dadc,#457b9d,#1d3557,#ffb703"
SIZE = (32, 48)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    return D.load_pairs("bundled", cache_dir=tmp_path_factory.mktemp("palettes"))


@pytest.fixture(scope="module")
def split(bundled):
    return D.split_pairs(bundled)


def _noise(h=40, w=48, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _png48(path, arr):
    """Write a 48-bit (16 bits per channel) RGB PNG by hand: Pillow cannot write one."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------- sources

def test_bundled_photos_are_the_eight_local_files(bundled):
    photos = D.bundled_photos()
    assert [n for n, _ in photos] == list(Ph.BUNDLED_NAMES)
    for name, a in photos:
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) >= 300, name
    assert [p.name for p in bundled] == [f"bundled/{n}" for n in Ph.BUNDLED_NAMES]
    for p in bundled:
        assert p.rgb.dtype == torch.float32 and p.rgb.shape[0] == 3 and 0 <= p.rgb.min() and p.rgb.max() <= 1
        assert p.palette.shape == (6, 3) and p.palette.dtype == torch.float32


def test_default_bundled_split_is_pinned(split, bundled):
    train, val = split
    assert [p.name for p in train] == ["bundled/chelsea", "bundled/china", "bundled/coffee", "bundled/flower",
                                       "bundled/grace_hopper", "bundled/rocket"]
    assert [p.name for p in val] == ["bundled/astronaut", "bundled/stereo_motorcycle"]
    # independent of the input order
    t2, v2 = D.split_pairs(bundled[::-1])
    assert [p.name for p in t2] == [p.name for p in train] and [p.name for p in v2] == [p.name for p in val]


def test_split_disjoint_covering_and_checked(bundled):
    for n_val in (1, 3, 7):
        train, val = D.split_pairs(bundled, n_val=n_val, seed=5)
        tn, vn = {p.name for p in train}, {p.name for p in val}
        assert len(vn) == n_val and not tn & vn and tn | vn == {p.name for p in bundled}
    with pytest.raises(ValueError, match="at least one training image"):
        D.split_pairs(bundled, n_val=8)
    with pytest.raises(ValueError, match="unique"):
        D.split_pairs(bundled + bundled[:1])
    assert D.split_pairs(bundled[:1]) == (bundled[:1], [])


# ---------------------------------------------------------------------------------------------- sampler

def test_no_validation_image_reaches_training(split):
    train, val = split
    sampler = D.PairSampler(train, size=SIZE, batch_size=8, seed=1)
    val_names, train_names = {p.name for p in val}, {p.name for p in train}
    seen = set()
    for _, batch in zip(range(40), sampler, strict=False):
        for key in ("j", "o"):
            seen |= {sampler.names[i] for i in batch[key]}
    assert seen <= train_names and not seen & val_names
    assert seen == train_names  # 640 draws over 6 photos: every one is used


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_tuple_semantics(split, jitter):
    train, _ = split
    sampler = D.PairSampler(train, size=SIZE, batch_size=12, seed=3, jitter=jitter)
    b = sampler.sample()
    B, (H, W) = 12, SIZE
    for k in ("I_s", "I_t", "I_o", "rgb", "rgb_o"):
        assert b[k].shape == (B, 3, H, W) and b[k].dtype == torch.float32, k
    for k in ("P_t", "P_o"):
        assert b[k].shape == (B, 6, 3) and b[k].dtype == torch.float32, k
    for k in ("I_s", "I_t", "I_o", "P_t", "P_o"):
        assert b[k].min() >= -1 and b[k].max() <= 1, k
    assert b["j"].dtype == torch.long and b["o"].dtype == torch.long and b["flip"].dtype == torch.bool
    assert set(b["shift_s"].tolist()) | set(b["shift_t"].tolist()) <= set(map(float, D.SHIFTS))
    # eq. (10): I_t keeps the source luminance
    assert (b["I_t"][:, 0] - b["I_s"][:, 0]).abs().max() <= 1e-5
    # I_s and I_t are the s- and t-shifts of the one returned crop (so they share crop and flip)
    def norm(x, dim=-3):
        return normalize_lab(x, dim).clamp(-1, 1)
    for i in range(B):
        rgb = b["rgb"][i:i + 1]
        torch.testing.assert_close(b["I_s"][i:i + 1], norm(hue_shift(rgb, b["shift_s"][i].item())), atol=1e-5, rtol=0)
        torch.testing.assert_close(b["I_t"][i:i + 1], norm(hue_shift(rgb, b["shift_t"][i].item())), atol=1e-5, rtol=0)
        P_j = train[b["j"][i]].palette
        torch.testing.assert_close(b["P_t"][i], norm(hue_shift(P_j, b["shift_t"][i].item(), dim=-1), -1),
                                   atol=1e-5, rtol=0)
        P_o = train[b["o"][i]].palette
        torch.testing.assert_close(b["P_o"][i], norm(rgb_to_lab(P_o, dim=-1), -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(b["I_o"], norm(rgb_to_lab(b["rgb_o"])), atol=1e-5, rtol=0)
    assert b["shift_s"].ne(b["shift_t"]).any() and b["flip"].any() and (~b["flip"]).any()
    if jitter:  # the jittered crop differs from the plain one drawn with the same seed
        plain = D.PairSampler(train, size=SIZE, batch_size=12, seed=3).sample()
        assert not torch.allclose(plain["rgb"], b["rgb"], atol=1e-3)
        # I_o is jittered too (else D tells real from generated by the jitter), with its own factors:
        # the same crop (strongly correlated with the plain one), other colours
        assert not torch.allclose(plain["rgb_o"], b["rgb_o"], atol=1e-3)
        for i in range(B):
            x, y = plain["rgb_o"][i].flatten(), b["rgb_o"][i].flatten()
            assert torch.corrcoef(torch.stack([x, y]))[0, 1] > 0.8, i


def test_flip_is_a_mirror_of_the_same_crop(split):
    train, _ = split
    # scale (1, 1): the crop is the whole canvas at a fixed position, so only the flip differs
    sampler = D.PairSampler(train[:2], size=SIZE, batch_size=32, seed=0, scale=(1.0, 1.0))
    b = sampler.sample()
    checked = 0
    for jj in range(2):
        rows = (b["j"] == jj).nonzero().flatten()
        flipped = [r for r in rows if b["flip"][r]]
        plain = [r for r in rows if not b["flip"][r]]
        assert flipped and plain
        a, m = b["rgb"][plain[0]], b["rgb"][flipped[0]]
        torch.testing.assert_close(m, a.flip(-1), atol=1e-5, rtol=0)
        assert (a - a.flip(-1)).abs().max() > 0.05  # the photo is not symmetric: the check can fail
        # I_s and I_t of the flipped sample are mirrored shifts of the unflipped crop
        for key, shift in (("I_s", "shift_s"), ("I_t", "shift_t")):
            ref = normalize_lab(hue_shift(a[None].flip(-1), b[shift][flipped[0]].item())).clamp(-1, 1)
            torch.testing.assert_close(b[key][flipped[0]][None], ref, atol=1e-5, rtol=0)
        # provenance: at scale 1 the crop is the whole photo j (nearest of all the resized photos)
        whole = D.validation_set(train, size=SIZE)["rgb"]
        assert (whole - a).abs().mean(dim=(1, 2, 3)).argmin().item() == jj
        # and two unflipped samples of the same photo are identical at scale 1
        if len(plain) > 1:
            torch.testing.assert_close(b["rgb"][plain[1]], a)
        checked += 1
    assert checked == 2


def test_random_crops_vary_and_seed_controls_them(split):
    train, _ = split
    a = D.PairSampler(train, size=SIZE, batch_size=4, seed=7)
    b = D.PairSampler(train, size=SIZE, batch_size=4, seed=7)
    c = D.PairSampler(train, size=SIZE, batch_size=4, seed=8)
    for _ in range(3):
        x, y, z = a.sample(), b.sample(), c.sample()
        for k in ("I_s", "P_t", "I_t", "I_o", "P_o", "j", "o", "shift_s", "shift_t", "flip"):
            assert torch.equal(x[k], y[k]), k
    assert not torch.equal(x["I_s"], z["I_s"])
    # resuming from a saved state gives the same next batch
    state = a.state_dict()
    nxt = a.sample()
    b.load_state_dict(state)
    assert torch.equal(b.sample()["I_t"], nxt["I_t"])
    # phase 1 (no I_o) draws the same numbers
    a.load_state_dict(state)
    p1 = a.sample(with_o=False)
    assert "I_o" not in p1 and torch.equal(p1["I_t"], nxt["I_t"])
    # with scale < 1, crops of one photo differ between draws
    s = D.PairSampler(train[:1], size=SIZE, batch_size=6, seed=0)
    rgb = s.sample()["rgb"]
    assert (rgb[0] - rgb[1:]).abs().amax(dim=(1, 2, 3)).min() > 1e-3



def test_sampler_rejects_bad_arguments(split):
    train, _ = split
    with pytest.raises(ValueError, match="at least one pair"):
        D.PairSampler([], size=SIZE)
    with pytest.raises(ValueError, match="scale"):
        D.PairSampler(train, size=SIZE, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="size"):
        D.PairSampler(train, size=(0, 4))


def test_validation_set(split):
    _, val = split
    vs = D.validation_set(val, size=SIZE)
    V, n = len(val), len(D.SHIFTS)
    assert vs["I_s"].shape == vs["I_t"].shape == (V * n, 3, *SIZE) and vs["P_t"].shape == (V * n, 6, 3)
    assert vs["shift_t"].tolist() == [float(s) for s in D.SHIFTS] * V
    assert vs["j"].tolist() == [v for v in range(V) for _ in range(n)]
    assert vs["names"] == [p.name for p in val]
    for k in ("I_s", "I_t", "P_t"):
        assert vs[k].dtype == torch.float32 and vs[k].min() >= -1 and vs[k].max() <= 1
    for v in range(V):
        rows = slice(v * n, (v + 1) * n)
        assert torch.equal(vs["I_s"][rows], vs["I_s"][v * n].expand(n, -1, -1, -1))  # source shift 0
        torch.testing.assert_close(vs["I_t"][v * n], vs["I_s"][v * n])  # t = 0: reconstruction
        assert (vs["I_t"][rows, 0] - vs["I_s"][rows, 0]).abs().max() <= 1e-5
    again = D.validation_set(val, size=SIZE)
    assert all(torch.equal(vs[k], again[k]) for k in ("I_s", "I_t", "P_t"))


# ---------------------------------------------------------------------------------------------- folders

def test_folder_image_rules(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(_noise(seed=1)).save(tmp_path / "a.JPG")
    Image.fromarray(_noise(seed=2, channels=1), mode="L").save(tmp_path / "sub" / "gray.png")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, 1, 3] = 255  # opaque red
    rgba[0, 2, 3] = 128  # half
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "sub" / "deeper" / "rgba.png")
    p = Image.new("P", (40, 40), 0)
    p.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "pal.png", transparency=0)
    sixteen = Image.new("I;16", (40, 40))
    sixteen.putdata([0, 32768, 65535, 257 * 100] * 400)
    sixteen.save(tmp_path / "sixteen.png")
    arr48 = np.zeros((40, 40, 3), np.uint16)
    arr48[..., 0], arr48[..., 1], arr48[..., 2] = 65535, 257 * 128, 257 * 10
    _png48(tmp_path / "rgb48.png", arr48)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(b"junk")

    photos = {n: (a, pal) for n, a, pal in D.folder_photos(tmp_path)}
    assert sorted(photos) == ["a.JPG", "pal.png", "rgb48.png", "sixteen.png", "sub/deeper/rgba.png", "sub/gray.png"]
    for a, pal in photos.values():
        assert a.dtype == np.float32 and a.shape[2] == 3 and pal is None
    g = photos["sub/gray.png"][0]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])
    np.testing.assert_allclose(g[..., 0], _noise(seed=2, channels=1) / 255.0, atol=1e-7)
    r = photos["sub/deeper/rgba.png"][0]
    np.testing.assert_allclose(r[0, 0], [1, 1, 1])  # transparent -> white
    np.testing.assert_allclose(r[0, 1], [1, 0, 0])
    np.testing.assert_allclose(r[0, 2], [1, 1 - 128 / 255, 1 - 128 / 255], atol=1e-6)
    q = photos["pal.png"][0]
    np.testing.assert_allclose(q[0, 0], [1, 1, 1])  # transparent palette entry -> white
    np.testing.assert_allclose(q[0, 1], [1, 0, 0])
    s = photos["sixteen.png"][0]
    np.testing.assert_allclose(s[0, :4, 0], [0, 32768 / 65535, 1.0, 100 / 255], atol=1e-6)
    assert np.array_equal(s[..., 0], s[..., 2])
    np.testing.assert_allclose(photos["rgb48.png"][0][5, 5], [1.0, 128 / 255, 10 / 255], atol=1e-6)


def test_large_images_are_downsized(tmp_path):
    Image.fromarray(_noise(60, 200, seed=3)).save(tmp_path / "wide.png")
    (name, a, _), = D.folder_photos(tmp_path, max_side=100)
    assert a.shape == (30, 100, 3)
    pairs = D.load_pairs(tmp_path, cache_dir=tmp_path / "cache", max_side=100)
    assert pairs[0].rgb.shape == (3, 30, 100) and pairs[0].name == "wide.png"


def test_corrupt_and_tiny_files_are_skipped_with_one_warning(tmp_path):
    Image.fromarray(_noise(seed=4)).save(tmp_path / "good.png")
    (tmp_path / "x.jpg").write_bytes(b"this is not a jpeg at all")
    Image.fromarray(_noise(20, 20, seed=5)).save(tmp_path / "tiny.png")
    good = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        photos = D.folder_photos(tmp_path)
    assert [n for n, _, _ in photos] == ["good.png"]
    assert len(w) == 1
    msg = str(w[0].message)
    assert "x.jpg: unreadable" in msg and "cut.png: unreadable" in msg
    assert "tiny.png: too small (20x20 px" in msg


def test_empty_missing_and_useless_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        D.folder_photos(tmp_path / "nope")
    with pytest.raises(ValueError, match="no usable photo in .*no files ending in"):
        D.folder_photos(tmp_path)
    Image.fromarray(_noise(10, 50)).save(tmp_path / "small.png")
    (tmp_path / "bad.webp").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"no usable photo.*bad\.webp: unreadable.*small\.png: too small"):
        D.load_pairs(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(NotADirectoryError):
        D.folder_photos(tmp_path / "small.png")


def test_too_few_readable_photos_get_one_message_in_photos(tmp_path, capsys):
    """One good photo and one corrupt file: one error (no warning besides), saying how many photos were
    read, how many the split needs for training and held out, and which file was skipped and why."""
    from pnlib.__main__ import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_noise(seed=9)).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg" * 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as e:
            D.load_split(str(folder))
    assert not caught, [str(w.message) for w in caught]
    msg = str(e.value)
    assert f"1 photo read from {folder} (1 skipped: broken.jpg: unreadable" in msg
    assert "at least 2 photos in a source: 1 for training and 1 held out" in msg
    assert "this gives 1 photo for training and 0 photos held out" in msg
    argv = ["train", "--preset", "ci", "--data", str(folder), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {msg}"]
    # with a second good photo the split works, and the skipped file is still named, in one warning
    Image.fromarray(_noise(seed=10)).save(folder / "good2.png")
    with pytest.warns(UserWarning, match=r"(?s)1 skipped while reading .*broken.jpg: unreadable"):
        train, val = D.load_split(str(folder), cache_dir=tmp_path / "cache")
    assert (len(train), len(val)) == (1, 1)


def test_palettes_file(tmp_path):
    Image.fromarray(_noise(seed=6)).save(tmp_path / "one.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(_noise(seed=7)).save(tmp_path / "sub" / "two.png")
    Image.fromarray(_noise(seed=8)).save(tmp_path / "three.png")
    (tmp_path / "palettes.csv").write_text(
        "# designer palettes\nfilename,c1,c2,c3,c4,c5,c6\n\n"
        f"one.png,{SIX}\n./sub/two.png, navy, red, #fff, #000, teal, gold\nghost.png,{SIX}\n")
    with pytest.warns(UserWarning, match=r"line 6: no photo named 'ghost.png'"):
        pairs = D.load_pairs(tmp_path, cache_dir=tmp_path / "cache")
    by = {p.name: p for p in pairs}
    from pnlib.palette import format_palette, parse_palette
    assert format_palette(by["one.png"].palette) == SIX.split(",")
    torch.testing.assert_close(by["sub/two.png"].palette, parse_palette("navy red #fff #000 teal gold"))
    assert by["three.png"].palette.shape == (6, 3)  # no row: extracted


@pytest.mark.parametrize("row,problem", [
    ("one.png,#e63946,#f1faee,#a8dadc,#457b9d,#1d3557", "exactly 6 colours, got 5"),
    ("one.png,#e63946,#f1faee,#a8dadc,#457b9d,#1d3557,#ffb703,#000", "exactly 6 colours, got 7"),
    ("one.png,#e63946,#f1faee,#zzzzzz,#457b9d,#1d3557,#ffb703", "entry 3 '#zzzzzz' is not"),
    (f",{SIX}", "no filename"),
    (f"one.png,{SIX}\none.png,{SIX}", "already has a palette on line 2"),
])
def test_malformed_palettes_row(tmp_path, row, problem):
    Image.fromarray(_noise(seed=6)).save(tmp_path / "one.png")
    f = tmp_path / "my palettes.csv"
    f.write_text("# comment\n" + row + "\n")
    with pytest.raises(ValueError) as e:
        D.folder_photos(tmp_path, palettes=f)
    msg = str(e.value)
    assert str(f) in msg and problem in msg
    assert ("line 3" if "already" in problem else "line 2") in msg


def test_palette_cache(tmp_path, monkeypatch):
    for i in range(3):
        Image.fromarray(_noise(seed=10 + i)).save(tmp_path / f"p{i}.png")
    cache = tmp_path / "cache"
    calls = []
    real = Pal.extract_palette

    def counting(rgb, **kw):
        calls.append(tuple(rgb.shape))
        return real(rgb, **kw)

    monkeypatch.setattr(Pal, "extract_palette", counting)  # what cached_palette calls
    first = D.load_pairs(tmp_path, cache_dir=cache)
    assert len(calls) == 3 and len(list(cache.glob("*.json"))) == 3
    second = D.load_pairs(tmp_path, cache_dir=cache)
    assert len(calls) == 3  # read back, not recomputed
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.palette, b.palette)
    Image.fromarray(_noise(seed=99)).save(tmp_path / "p1.png")  # change one image
    D.load_pairs(tmp_path, cache_dir=cache)
    assert len(calls) == 4
