"""The data-scaling experiment (pnlib.scaling), nested subsets, and the phase-2 ablation (pnlib.train)."""
import json
import math

import pytest
import torch

from pnlib.config import get_config
from pnlib.data import PairSampler, load_split, nested_subset, validation_set
from pnlib.experiments import phase2_ablation
from pnlib.model import PaletteNet
from pnlib.scaling import fit_trend, load_points, run_point


def test_nested_subsets_only_ever_add_photos():
    train, _ = load_split("bundled")
    subsets = [nested_subset(train, n) for n in (1, 2, 4, len(train))]
    names = [{p.name for p in s} for s in subsets]
    assert [len(s) for s in names] == [1, 2, 4, len(train)]
    assert names[0] < names[1] < names[2] < names[3]
    assert [p.name for p in subsets[1]] == sorted(p.name for p in subsets[1])
    assert nested_subset(train, 0) == train
    with pytest.raises(ValueError, match="training split has 6 photos"):
        nested_subset(train, 7)


def test_fit_trend_recovers_a_power_law_and_its_extrapolation():
    pts = [{"n_photos": n, "held_out": {"hue_de00": 20.0 * n ** -0.3 * (1 + e)}}
           for n, e in ((6, 0.01), (6, -0.01), (12, 0.0), (25, 0.01), (44, -0.01), (44, 0.0))]
    fit = fit_trend(pts, at=1561)
    assert fit["b"] == pytest.approx(-0.3, abs=0.02) and fit["a"] == pytest.approx(20.0, rel=0.05)
    assert fit["interval95"][0] < 20.0 * 1561 ** -0.3 < fit["interval95"][1]
    assert fit["predicted"] == pytest.approx(20.0 * 1561 ** -0.3, rel=0.1)
    with pytest.raises(ValueError):
        fit_trend(pts[:2])


def test_run_point_scores_held_out_and_its_own_training_photos(tmp_path):
    res = run_point("ci", 2, 0, tmp_path, head="direct", steps1=4, steps2=0)
    _, val = load_split("bundled")
    assert res["held_out"]["names"] == [p.name for p in val]   # the same held-out photos whatever n
    assert len(res["train"]["names"]) == res["n_photos"] == 2
    for part in ("held_out", "train"):
        r = res[part]
        assert 0 < r["hue_de00"] < 100 and 0 < r["identity_hue_de00"] < 100 and 0 <= r["stray_edges"] <= 1
        assert math.isfinite(r["own_de00"]) and len(r["per_photo"]["hue_de00"]) == r["n_photos"]
    assert json.loads((tmp_path / "n2-s0.json").read_text())["gap_hue_de00"] == pytest.approx(res["gap_hue_de00"])
    assert [p["n_photos"] for p in load_points(tmp_path)] == [2]
    again = run_point("ci", 2, 0, tmp_path, head="direct", steps1=4, steps2=0, eval_size=(32, 64))
    assert again["eval_size"] == [32, 64] and (tmp_path / "n2-s0-e32x64.json").is_file()
    assert len(load_points(tmp_path)) == 1 and len(load_points(tmp_path, (32, 64))) == 1


def _ablation(seed):
    cfg = get_config("ci", head="direct")
    train, val_pairs = load_split("bundled")
    torch.manual_seed(0)
    G1 = PaletteNet(cfg["width"], head="direct")
    sampler = PairSampler(train, size=cfg["size"], batch_size=2, seed=1, jitter=0.3)
    val = validation_set(val_pairs[:1], size=cfg["size"])
    return phase2_ablation(G1, cfg, sampler, val, steps=3, eval_every=3, seed=seed)


def test_phase2_ablation_without_the_adversarial_term_ignores_the_discriminator():
    a, b = _ablation(seed=0), _ablation(seed=1)   # other seeds: other initial discriminators
    e_only, paper = "E-loss only (L_Adv = 0)", "paper's phase 2 (λ = 10, L_E summed)"
    wa, wb = (dict(r[e_only]["G"].decoder.state_dict()) for r in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)                # D never reaches RD
    pa, pb = (dict(r[paper]["G"].decoder.state_dict()) for r in (a, b))
    assert any(not torch.equal(pa[k], pb[k]) for k in pa)           # with L_Adv it does
    for r in a.values():
        assert r["history"][0]["val_de00"] == a[paper]["history"][0]["val_de00"]   # one phase-1 start
        assert {"acc_Ihat_Pt", "acc_Io_Pt", "acc_Ihat_Po", "acc_Io_Po"} <= set(r["history"][-1])
