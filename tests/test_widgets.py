"""pnlib.widgets.PaletteControl, headless (no browser, no kernel): pickers, LCh sliders, hue, errors."""
import numpy as np
import pytest
import torch
from skimage import data, transform

from pnlib.color import hue_shift, lab_to_rgb, normalize_lab, rgb_to_lab
from pnlib.model import PaletteNet
from pnlib.palette import parse_palette
from pnlib.widgets import PaletteControl, lab_to_lch

ipywidgets = pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module", params=["direct", "palette"])
def model(request):
    """The paper's head and ours (the shipped model's)."""
    torch.manual_seed(0)
    return PaletteNet(8, request.param).eval()


@pytest.fixture(scope="module")
def photo():
    return (transform.resize(data.coffee(), (48, 72), anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.fixture
def w(model, photo):
    return PaletteControl(image=photo, model=model, preview=32)


def _lab_norm(p):
    return normalize_lab(rgb_to_lab(p, dim=-1), dim=-1)


def test_builds_with_extracted_palette_and_full_resolution_result(w):
    import io

    from PIL import Image

    assert isinstance(w, ipywidgets.VBox)
    assert len(w.pickers) == 6 and len(w.sliders) == 6 and set(w.sliders[0]) == {"L", "C", "h"}
    assert [p.value for p in w.pickers] == [parse_palette_hex(c) for c in w.extracted]
    assert w.result_png.startswith(b"\x89PNG") and w.error == ""
    with Image.open(io.BytesIO(w.result_png)) as im:
        assert im.size == (72, 48)  # full resolution, though RD ran at the preview size
    assert w.preview_size == (21, 32)
    torch.testing.assert_close(w.last_palette_sent, _lab_norm(parse_palette([p.value for p in w.pickers])))
    torch.testing.assert_close(w.current_palette(), w.extracted, atol=0.5 / 255, rtol=0)


def parse_palette_hex(rgb):
    from pnlib.palette import format_palette

    return format_palette(rgb[None])[0]


def test_encoder_runs_once_per_image(model, photo):
    calls = []
    h = model.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        w = PaletteControl(image=photo, model=model, preview=32)
        w.pickers[0].value = "#ff0000"
        w.hue_slider.value = 40
        w.sliders[2]["C"].value = 60
    finally:
        h.remove()
    assert len(calls) == 1


def test_picker_changes_result_and_palette_sent(w):
    before = w.result_png
    w.pickers[1].value = "#1e90ff"
    assert w.result_png != before and w.error == ""
    hexes = [p.value for p in w.pickers]
    assert hexes[1] == "#1e90ff"
    expect = _lab_norm(parse_palette(hexes))
    torch.testing.assert_close(w.last_palette_sent, expect, atol=1e-5, rtol=0)
    torch.testing.assert_close(w.current_palette(), parse_palette(hexes), atol=1e-6, rtol=0)
    # The picker set its sliders to the colour's LCh.
    # The picker set its sliders to the colour's LCh, on the sliders' 0.5 grid (a browser slider would
    # snap an off-grid value and send it back: a feedback loop).
    L, C, h = lab_to_lch(rgb_to_lab(parse_palette(hexes)[1], dim=-1))
    s = w.sliders[1]
    for name, v in (("L", L), ("C", C), ("h", h)):
        assert s[name].value == pytest.approx(v, abs=0.25) and (2 * s[name].value).is_integer()


@pytest.mark.parametrize("kind, value", [("L", 80.0), ("C", 70.0), ("h", 200.0)])
def test_slider_changes_picker_and_result(w, kind, value):
    k = 3
    before_png, before_hex = w.result_png, w.pickers[k].value
    others = {n: s.value for n, s in w.sliders[k].items() if n != kind}
    w.sliders[k][kind].value = value
    assert w.pickers[k].value != before_hex
    assert w.result_png != before_png and w.error == ""
    # No feedback loop: the other two sliders keep their values (the colour may have been clipped).
    assert {n: s.value for n, s in w.sliders[k].items() if n != kind} == others
    assert w.sliders[k][kind].value == value
    s = w.sliders[k]
    lab = torch.tensor([s["L"].value, s["C"].value * np.cos(np.radians(s["h"].value)),
                        s["C"].value * np.sin(np.radians(s["h"].value))], dtype=torch.float32)
    torch.testing.assert_close(w.current_palette()[k], lab_to_rgb(lab, dim=-1, clip=True), atol=0.5 / 255, rtol=0)
    assert w.pickers[k].value == parse_palette_hex(w.current_palette()[k])


def test_global_hue_rotates_all_six(w):
    base = w.current_palette()
    before = w.result_png
    w.hue_slider.value = 90
    expect_lab = hue_shift(base, 90.0, dim=-1)
    torch.testing.assert_close(w.current_palette(), lab_to_rgb(expect_lab, dim=-1, clip=True))
    torch.testing.assert_close(w.last_palette_sent, normalize_lab(expect_lab, dim=-1).clamp(-1, 1))
    assert w.result_png != before
    # every colour with some chroma moved
    moved = (w.current_palette() - base).abs().amax(-1)
    chroma = rgb_to_lab(base, dim=-1)[:, 1:].norm(dim=-1)
    assert bool((moved[chroma > 5] > 0.02).all())


def test_reset_and_palette_from_the_image(w):
    w.pickers[0].value = "#00ff00"
    w.hue_slider.value = -60
    w.reset_button.click()
    assert w.hue_slider.value == 0
    torch.testing.assert_close(w.current_palette(), w.extracted, atol=0.5 / 255, rtol=0)
    assert [p.value for p in w.pickers] == [parse_palette_hex(c) for c in w.extracted]
    w.pickers[2].value = "#000000"
    w.from_image_button.click()
    torch.testing.assert_close(w.current_palette(), w.extracted, atol=0.5 / 255, rtol=0)
    w.palette_source.value = "chelsea"
    w.from_image_button.click()
    assert not torch.allclose(w.current_palette(), w.extracted, atol=0.05) and w.error == ""


def test_errors_are_shown_in_the_widget_and_cleared(w, monkeypatch):
    good = w.result_png

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(w.engine, "render", boom)
    w.pickers[4].value = "#abcdef"  # the observer runs update(); nothing may propagate out of it
    assert "boom" in w.error and "RuntimeError" in w.error
    assert "boom" in w.error_area.value and "#b00020" in w.error_area.value  # shown, in red
    assert w.result_png == good  # the last good result stays
    assert w.update() is False and "boom" in w.error
    monkeypatch.undo()
    assert w.update() is True
    assert w.error == "" and w.error_area.value == "" and w.result_png != good


def test_bench_widget_prints_its_line(capsys):
    """A smoke test of the benchmark (the numbers themselves are printed, never asserted)."""
    from pnlib.bench import bench_widget

    res = bench_widget(preview=64, repeat=1)
    assert res["ms"] > 0 and "widget update at preview 64 (2 threads):" in capsys.readouterr().out


def test_affine_head_applies_the_transform_at_full_resolution(photo):
    """Affine head: A, β are upsampled and applied to the full-size chroma. An untrained one is the
    identity, so the widget must give back the photo itself, sharp, although RD ran at 21×32."""
    import io

    from PIL import Image

    torch.manual_seed(0)
    w = PaletteControl(image=photo, model=PaletteNet(8, "affine").eval(), preview=32)
    assert w.preview_size == (21, 32) and "A, β upsampled" in w.status.value
    with Image.open(io.BytesIO(w.result_png)) as im:
        out = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(out - photo.astype(int)).max() <= 2


def test_the_sliders_read_the_palette_recolor_reads_on_a_large_photo():
    """One P_s for the sliders, recolor and palette_of: on a 1536×1536 photo (above the 1024 px at which
    a photo's palette is extracted) the sliders' P_s is palette_of's, exactly."""
    from pnlib.inference import load_image, palette_of
    from pnlib.palette import extract_palette

    big = (transform.resize(data.coffee(), (1536, 1536), anti_aliasing=True) * 255).round().astype(np.uint8)
    torch.manual_seed(0)
    w = PaletteControl(image=big, model=PaletteNet(8, "palette").eval(), preview=64)
    own = palette_of(big)
    assert torch.equal(w.engine.photo_palette, own) and torch.equal(w.extracted, own)
    assert not torch.equal(extract_palette(load_image(big)), own)   # the full-size photo's palette differs
