"""pnlib.evaluate: the two evaluation protocols, the table, the figure and `python -m pnlib eval` (seconds)."""
import json

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from pnlib import evaluate as E
from pnlib.__main__ import main
from pnlib.color import denormalize_lab, lab_to_rgb, rgb_to_lab
from pnlib.config import SHIPPED
from pnlib.data import load_pairs, split_pairs, validation_set
from pnlib.metrics import mean_delta_e00
from pnlib.model import PaletteNet
from pnlib.palette import RANDOM_L, match_palette

SIZE = (32, 48)


@pytest.fixture(scope="module", params=["direct", "palette"])
def model(request):
    """The paper's head and ours (the shipped model's)."""
    torch.manual_seed(0)
    return PaletteNet(8, request.param).eval()


@pytest.fixture(scope="module")
def results(model):
    return E.evaluate(model, size=SIZE, n_random=2, n_photo=2, keep_outputs=True)


def test_both_protocols_and_every_method(results):
    key = results["model"]["key"]
    assert key == {"direct": "paper", "palette": "ours"}[results["model"]["head"]]
    assert tuple(results["protocol_a"]["methods"]) == E.methods_a(key) == ("identity", "chang", "tan", key, "oracle")
    assert tuple(results["protocol_b"]["methods"]) == E.methods_b(key)
    assert results["data"]["held_out"] == ["bundled/astronaut", "bundled/stereo_motorcycle"]
    assert results["protocol_a"]["n_tuples"] == 2 * 18
    assert results["protocol_b"]["n_tuples"] == 2 * (2 + 2)
    assert results["protocol_b"]["targets_per_image"] == {"held-out": 1, "train": 1, "random": 2}
    for m in results["protocol_a"]["methods"].values():
        assert len(m["per_tuple_de00"]) == 36 and m["median_de00"] >= 0 and m["mean_abs_dL"] >= 0
    assert results["timing"]["total_s"] > 0
    assert len(results["timing"]["tan_layers_s"]) == 2 and results["timing"]["tan_recolor_s"] > 0


def test_identity_equals_the_direct_delta_e00(results):
    _, val_pairs = split_pairs(load_pairs("bundled"))
    val = validation_set(val_pairs, size=SIZE)
    direct = mean_delta_e00(denormalize_lab(val["I_s"]), denormalize_lab(val["I_t"]))
    assert results["protocol_a"]["methods"]["identity"]["mean_de00"] == pytest.approx(direct, rel=1e-6)
    assert results["protocol_a"]["methods"]["identity"]["mean_abs_dL"] == pytest.approx(0.0, abs=1e-6)
    # the 0° tuples are the source itself
    first = [t["shift"] == 0 for t in results["protocol_a"]["tuples"]]
    de = results["protocol_a"]["methods"]["identity"]["per_tuple_de00"]
    assert max(d for d, f in zip(de, first, strict=True) if f) < 1e-3


def test_oracle_is_the_floor_and_chang_beats_identity(results):
    a = results["protocol_a"]["methods"]
    assert a["oracle"]["mean_de00"] < 0.5
    # Chang is given the source palette and a target that corresponds colour by colour: it must help.
    assert a["chang"]["mean_de00"] < a["identity"]["mean_de00"]
    b = results["protocol_b"]["methods"]
    assert b["chang"]["adherence"] < b["identity"]["adherence"]


def test_tan_follows_hue_shifts_and_gives_the_photo_back(results):
    """Tan et al. 2018, given its own palette hue-shifted, beats doing nothing; given its own palette
    unchanged, it gives the photo back up to its reconstruction error (its hull clipped to the cube)."""
    a, b = results["protocol_a"]["methods"], results["protocol_b"]["methods"]
    assert a["tan"]["mean_de00"] < 0.6 * a["identity"]["mean_de00"]
    assert b["tan"]["adherence"] < b["identity"]["adherence"]
    assert results["own_palette"]["methods"]["tan"]["mean_de00"] < 1.0


def test_markdown_has_a_row_per_method(results):
    md = E.to_markdown(results)
    for m in E.methods_a(results["model"]["key"]):
        assert sum(line.startswith(f"| {E.LABELS[m]} (`{m}`) |") for line in md.splitlines()) == 1, m
    rows = [line for line in md.splitlines() if line.startswith("| ")][2:]
    assert sum("PaletteNet" in r for r in rows) == (results["model"]["head"] == "direct")  # only the paper's
    assert "astronaut" in md and "32×48" in md
    assert md.splitlines()[0].startswith("**Checkpoint**")


def test_json_and_figure(results, tmp_path):
    path = E.save_json(results, tmp_path / "e.json")
    back = json.loads(path.read_text())
    assert "outputs" not in back["protocol_a"] and "outputs" not in back["protocol_b"]
    oracle = results["protocol_a"]["methods"]["oracle"]["mean_de00"]
    assert back["protocol_a"]["methods"]["oracle"]["mean_de00"] == oracle
    fig = E.comparison_figure(results)
    assert len(fig.axes) == 4 * 7
    matplotlib.pyplot.close(fig)


def test_extreme_palettes_and_their_figure(model, results):
    from pnlib import viz
    photo = results["protocol_a"]["outputs"]["source"][0] / 255.0
    P_s = results["protocol_a"]["outputs"]["source_palette"][0]
    r = E.extreme_palettes(model, photo, P_s)
    n = len(E.EXTREME_PALETTES)
    assert r["names"] == list(E.EXTREME_PALETTES) and r["targets"].shape == (n, 6, 3)
    assert r["key"] == E.model_key(model) == {"direct": "paper", "palette": "ours"}[model.head]
    for m in ("chang", r["key"]):
        assert r[m].shape == (n, 3, *SIZE) and 0 <= float(r[m].min()) and float(r[m].max()) <= 1
        assert len(r[m + "_adherence"]) == len(r[m + "_dL"]) == n
        assert all(e <= a + 1e-6 for a, e in zip(r[m + "_adherence"], r[m + "_adherence_equal_L"], strict=True))
    # each target, drawn in P_s's order, is the same set of colours as the palette asked for
    grey = E.parse_palette(E.EXTREME_PALETTES["all grey"])
    assert sorted(map(tuple, r["targets"][0].tolist())) == sorted(map(tuple, grey.tolist()))
    fig = viz.palette_comparison(photo, P_s, {"Chang": r["chang"], "model": r[r["key"]]},
                                 r["targets"], r["names"], {"Chang": r["names"], "model": r["names"]})
    assert len(fig.axes) == 2 * (n + 1)                                      # two rows of n + 1 panels
    assert sum(len(ax.child_axes) for ax in fig.axes) == 2 * n + 1           # a swatch under each image
    matplotlib.pyplot.close(fig)


def test_show_images_draws_a_colour_bar_for_maps():
    from pnlib import viz
    fig = viz.show_images([torch.rand(3, 8, 12), torch.rand(8, 12)], cmap="magma", vmin=0, vmax=1, cbar="x (units)")
    assert len(fig.axes) == 3 and fig.axes[-1].get_ylabel() == "x (units)"   # two panels, one bar
    matplotlib.pyplot.close(fig)


def test_random_palettes_are_seeded_and_displayable():
    p = E.random_palettes(3, seed=5)
    assert p.shape == (3, 6, 3)
    torch.testing.assert_close(p, E.random_palettes(3, seed=5))
    assert not torch.equal(p, E.random_palettes(3, seed=6))
    lab = rgb_to_lab(p.double(), dim=-1)
    assert (lab[..., 0] >= RANDOM_L[0] - 1e-3).all() and (lab[..., 0] <= RANDOM_L[1] + 1e-3).all()


def test_match_palette_undoes_a_permutation():
    src = torch.tensor([[.9, .1, .1], [.1, .8, .2], [.1, .2, .9], [.9, .9, .2], [.1, .1, .1], [.95, .95, .95]])
    perm = torch.tensor([3, 5, 0, 1, 4, 2])
    torch.testing.assert_close(match_palette(src, src[perm]), src)
    # a hue-shifted copy by a small angle keeps each colour's partner
    from pnlib.color import hue_shift
    near = lab_to_rgb(hue_shift(src, 10.0, dim=-1), dim=-1)
    torch.testing.assert_close(match_palette(src, near[perm]), near)


def test_cli_missing_checkpoint_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope" / "model.pt"
    assert main(["eval", "--checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_cli_missing_data_folder_exits_2(tmp_path, model, capsys, save_model):
    ck = save_model(model, tmp_path / "m.pt")
    assert main(["eval", "--checkpoint", str(ck), "--data", str(tmp_path / "photos")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "photos") in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped checkpoint (pnlib/checkpoints/palettenet.pt)")
def test_cli_eval_of_the_shipped_model_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "res" / "e.json"
    assert main(["eval", "--checkpoint", str(SHIPPED), "--size", *map(str, SIZE), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint: {SHIPPED} (preset 'quick', width 16, head palette, step 3600 of 3600)" in printed
    assert "| ours: palette head (not in the paper) (`ours`) |" in printed and str(out) in printed
    assert "PaletteNet" not in printed.split("| method")[1]      # no row of ours is called PaletteNet
    back = json.loads(out.read_text())
    assert back["checkpoint"] == str(SHIPPED) and back["size"] == list(SIZE) and back["model"]["head"] == "palette"
    a = back["protocol_a"]["methods"]
    assert list(a) == ["identity", "chang", "tan", "ours", "oracle"]
    assert a["ours"]["mean_de00"] < a["identity"]["mean_de00"]   # a trained model beats doing nothing
