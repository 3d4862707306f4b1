"""Every command and every benchmark on every head: the paper's (direct), affine and ours (palette).

One tiny `ci` run per head, trained by the `train` command (both phases, a few steps) and exported by
`export`; then `recolor`, `eval`, `summary` and the benchmarks run on each (small sizes: seconds).
"""
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data, transform

from pnlib import bench
from pnlib.__main__ import main
from pnlib.checkpoint import read_checkpoint
from pnlib.inference import SHIPPED
from pnlib.model import HEADS

PALETTE = "#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51,#f1faee"
SIZE = (32, 48)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """head -> the exported model of a `ci` run trained with that head (`train`, then `export`)."""
    root = tmp_path_factory.mktemp("heads")
    out = {}
    for head in HEADS:
        run = root / head
        assert main(["train", "--preset", "ci", "--head", head, "--steps1", "3", "--steps2", "2",
                     "--out", str(run), "--no-progress"]) == 0
        assert main(["export", str(run / "checkpoint.pt"), str(root / f"{head}.pt")]) == 0
        out[head] = root / f"{head}.pt"
    return out


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    img = (transform.resize(data.chelsea(), (40, 60), anti_aliasing=True) * 255).round().astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


@pytest.mark.parametrize("head", HEADS)
def test_train_and_export_keep_the_head(models, head):
    state = read_checkpoint(models[head])
    assert state["model_args"] == {"width": 8, "head": head} and state["config"]["head"] == head
    assert state["step"] == 5 and "D" not in state


@pytest.mark.parametrize("head", [*HEADS, "shipped"])
def test_recolor_command(models, photo, tmp_path, head):
    """`recolor` with each head's checkpoint (and the shipped model: no --checkpoint), in either order."""
    if head == "shipped" and not SHIPPED.is_file():
        pytest.skip("no shipped checkpoint (pnlib/checkpoints/palettenet.pt)")
    ck = [] if head == "shipped" else ["--checkpoint", str(models[head])]
    for extra in ([], ["--keep-order"]):
        out = tmp_path / f"out{len(extra)}.png"
        assert main(["recolor", str(photo), "--palette", PALETTE, "-o", str(out), "--device", "cpu", *ck, *extra]) == 0
        with Image.open(out) as im:
            assert im.size == (60, 40) and im.mode == "RGB"


@pytest.mark.parametrize("head", HEADS)
def test_eval_command(models, tmp_path, capsys, head):
    """`eval` on each head's `ci` model (tests/test_evaluate.py runs it on the shipped model)."""
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(models[head]), "--size", *map(str, SIZE), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["model"]["head"] == head and res["size"] == list(SIZE)
    key = {"direct": "paper", "affine": "ours_affine", "palette": "ours"}[head]   # every row names its model
    assert res["model"]["key"] == key
    for protocol in ("protocol_a", "protocol_b"):
        assert np.isfinite(res[protocol]["methods"][key]["mean_de00" if protocol == "protocol_a" else "adherence"])
    label = "PaletteNet (the paper's)" if head == "direct" else f"ours: {head} head (not in the paper)"
    assert f"| {label} (`{key}`) |" in capsys.readouterr().out


@pytest.mark.parametrize("head", HEADS)
def test_summary_command(capsys, head):
    assert main(["summary", "--preset", "ci", "--size", *map(str, SIZE), "--head", head]) == 0
    assert f"head {head}," in capsys.readouterr().out


@pytest.mark.parametrize("head", HEADS)
def test_model_benchmarks(models, head, capsys):
    """`bench recolor`, `widget` and `train`, small, on each head (the numbers are printed, not asserted)."""
    rows = bench.bench_recolor(sizes=(SIZE,), repeat=1, checkpoint=models[head])
    assert rows[0]["seconds"] > 0 and f"{head} head" in rows[0]["model"]
    w = bench.bench_widget(preview=32, repeat=1, checkpoint=models[head], size=SIZE)
    assert w["ms"] > 0 and f"{head} head" in w["model"]
    t = bench.bench_train("ci", steps=1, warmup=0, peak_n=64, head=head)
    assert t["head"] == head and t["phase1_img_s"] > 0 and t["phase2_img_s"] > 0
    out = capsys.readouterr().out
    assert f"recolor {SIZE[0]}x{SIZE[1]} (2 threads):" in out and "widget update at preview 32" in out
    assert f"head {head} (" in out


def test_the_other_benchmarks_at_small_sizes(capsys):
    assert bench.bench_hue_shift(size=SIZE, repeat=1)["pnlib_s"] > 0
    assert bench.bench_sampler(sizes=(SIZE,), batch_size=2, n=1)[0]["batches_per_s"] > 0
    assert bench.bench_chang(repeats=1, size=SIZE) > 0
    out = capsys.readouterr().out
    assert "hue_shift x18 at 32x48" in out and "sampler 32x48 batch 2" in out and "chang 48x32" in out


def test_bench_command_checks_its_checkpoint(tmp_path, capsys):
    assert main(["bench", "recolor", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert main(["bench", "color", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: no checkpoint at") and "none.pt" in err[0]
    assert err[1] == "error: --checkpoint chooses the model of the recolor and widget benchmarks; ask for one"


def test_bench_train_command_takes_each_head(capsys, monkeypatch):
    """`bench train --head ...` times each head in turn (the timing itself is shrunk for the test)."""
    seen = []
    real = bench.bench_train

    def small(preset=None, steps=20, **kw):
        seen.append(kw["head"])
        return real(preset, steps=1, warmup=0, peak_n=64, **kw)

    monkeypatch.setattr(bench, "bench_train", small)
    assert main(["bench", "train", "--preset", "ci", "--head", *HEADS, "--steps", "1"]) == 0
    assert seen == list(HEADS)
    out = capsys.readouterr().out
    assert all(f"head {h} (" in out for h in HEADS)
