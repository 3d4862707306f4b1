"""The palette-control widget: six colours, live recoloring (§4.4, Fig. 7).

§4.4 changes one colour of the target palette P_t while the others stay fixed, to see *where* the
network puts each colour; PaletteNet takes no per-pixel hints, so it must decide that itself.
:class:`PaletteControl` makes that experiment interactive: six colour pickers, lightness / chroma / hue
sliders per colour (LCh, the polar form of LAB's ab plane), a global hue rotation of the whole palette
(the same :func:`pnlib.color.hue_shift` as the training augmentation of eq. 10), a palette taken from
this or another photo, and a reset.

Speed comes from eq. (2): :class:`pnlib.inference.PalettePreview` computes FE(I_s) once per photo and
reruns only RD, at a preview size, for each palette (the maths, without any UI; see its docstring).
This module holds only the UI state: the controls, what they show, and errors.
"""
from __future__ import annotations

import html
import io
import traceback
from contextlib import contextmanager

import ipywidgets as widgets
import numpy as np
import torch

from .color import hue_shift, lab_to_rgb, rgb_to_lab, to_uint8
from .config import Stopwatch
from .inference import PalettePreview, cached_model, load_image, palette_of
from .palette import format_palette, palette_lab_norm, parse_palette
from .photos import BUNDLED_NAMES, bundled_photos

#: LCh slider ranges: L in [0, 100]; C up to the most saturated sRGB colour (blue, C ≈ 133.8); h in degrees.
L_RANGE, C_RANGE, H_RANGE = (0.0, 100.0), (0.0, 134.0), (0.0, 360.0)
SLIDER_STEP = 0.5
_THIS_PHOTO = "this photo"
_bundled_cache: dict = {}


def _on_grid(x: float, bounds, step: float = SLIDER_STEP) -> float:
    """x rounded to a multiple of step, inside bounds."""
    return float(min(max(round(x / step) * step, bounds[0]), bounds[1]))


def lab_to_lch(lab: torch.Tensor) -> tuple[float, float, float]:
    """One LAB colour (3,) -> (L, C, h): C = sqrt(a² + b²), h = atan2(b, a) in degrees [0, 360)."""
    L, a, b = (float(v) for v in lab)
    return L, float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)) % 360.0)


def lch_to_lab(L: float, C: float, h: float) -> torch.Tensor:
    """(L, C, h in degrees) -> one LAB colour (3,)."""
    r = np.radians(h)
    return torch.tensor([L, C * np.cos(r), C * np.sin(r)], dtype=torch.float32)


def png_bytes(rgb_u8: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes, uncompressed: the widget re-encodes on every change, and for a
    432×288 result zlib's fastest level took 9.7 ms against 4.7 ms stored (2026-11-30, 2 CPU threads),
    for 218 KB against 374 KB sent to a browser that usually runs on the same machine. Lossless either way."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb_u8).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def _bundled_palette(name: str) -> torch.Tensor:
    """The palette of a bundled photo (:func:`~pnlib.inference.palette_of`, as ``recolor --palette-from``
    takes it), extracted once per session."""
    if name not in _bundled_cache:
        _bundled_cache[name] = palette_of(dict(bundled_photos())[name])
    return _bundled_cache[name]


class PaletteControl(widgets.VBox):
    """Recolor one photo live from six editable palette colours (§4.4).

    ``image``: anything :func:`pnlib.inference.load_image` reads; ``model``: a PaletteNet (``None``: the
    shipped one); ``preview``: the long side, in pixels, at which RD runs (never above the photo's own).

    For tests and scripts: ``pickers`` (6 ColorPickers), ``sliders`` (one dict ``{"L", "C", "h"}`` of
    FloatSliders per colour), ``hue_slider`` (rotates all six colours), ``from_image_button`` with
    ``palette_source`` (this photo or a bundled one), ``reset_button``, ``result_png`` (PNG bytes of the
    current result), ``current_palette()`` ((6, 3) RGB after the hue rotation), ``last_palette_sent``
    (the (6, 3) normalised-LAB P_t last passed to the model), ``error`` (the current error text, "" if
    none), ``update()`` (recompute now). The palette is always exactly the six pickers' '#rrggbb' colours
    (8 bits per channel); editing a colour's sliders sets its picker and vice versa, and the sliders
    keep the values you asked for even where the colour had to be clipped to the sRGB gamut.
    """

    def __init__(self, image, model=None, preview: int = 256, palette=None):
        self.model = model if model is not None else cached_model()
        self.rgb = load_image(image)  # (3, H, W), full resolution
        self.preview = int(preview)
        self.extracted = palette_of(self.rgb)  # P_s: exactly the palette recolor reads from this photo
        self._base = _quantise(palette if palette is not None else self.extracted)
        self._holding = 0
        self.error = ""
        self.result_png = b""
        self.last_palette_sent = None
        self.last_update_ms = None
        # FE(I_s) once, at the preview size. The palette head's P_s is the photo's palette (the pickers start
        # from it, rounded to 8 bits), so picker i moves the region of the photo's colour i (no re-matching).
        self.engine = PalettePreview(self.rgb, self.model, self.preview, photo_palette=self.extracted)
        self.size, self.preview_size = self.engine.size, self.engine.preview_size
        self._build()
        self.update()

    def render_png(self, P_t: torch.Tensor) -> bytes:
        """The result for a normalised-LAB P_t (6, 3), as PNG bytes."""
        return png_bytes(self.engine.render(P_t))

    # -- the palette ------------------------------------------------------------------------------------

    def current_palette(self) -> torch.Tensor:
        """The (6, 3) RGB target palette: the edited colours, hue-rotated by ``hue_slider``."""
        theta = float(self.hue_slider.value)
        if theta == 0:
            return self._base.clone()
        return lab_to_rgb(hue_shift(self._base, theta, dim=-1), dim=-1, clip=True)

    def palette_lab_norm(self) -> torch.Tensor:
        """P_t for the network: the palette in normalised LAB (§4.2), (6, 3), hue-rotated as in training."""
        theta = float(self.hue_slider.value)
        return palette_lab_norm(self._base, theta if theta != 0 else None)

    def set_palette(self, palette) -> None:
        """Set all six colours (anything parse_palette takes) and recompute."""
        self._base = _quantise(palette)
        with self._hold():
            for k in range(6):
                self.pickers[k].value = self._hex(k)
                self._sync_sliders(k)
        self.update()

    def _hex(self, k: int) -> str:
        return format_palette(self._base[k:k + 1])[0]

    # -- widgets ----------------------------------------------------------------------------------------

    def _build(self) -> None:
        H, W = self.size
        shown = min(W, 420)
        source_png = png_bytes(to_uint8(self.rgb).permute(1, 2, 0).numpy())
        self.source_image = widgets.Image(value=source_png, format="png", width=shown)
        self.result = widgets.Image(format="png", width=shown)
        self.swatch = widgets.HTML()
        self.status = widgets.HTML()
        self.error_area = widgets.HTML()
        columns = self._build_colours()
        for k in range(6):
            self._sync_sliders(k)
        self._build_palette_row()

        def titled(title, w):
            return widgets.VBox([widgets.HTML(f"<b>{title}</b>", layout=widgets.Layout(height="30px")), w])

        super().__init__([
            widgets.HBox([titled("source I<sub>s</sub>", self.source_image),
                          titled("result Î<sub>t</sub> = [I<sup>L</sup><sub>s</sub>, Îab<sub>t</sub>]",
                                 self.result)]),
            self.swatch,
            widgets.HBox(columns, layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.hue_slider, self.palette_source, self.from_image_button, self.reset_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.status,
            self.error_area,
        ])
        # DOM classes, so a browser test (and a reader's CSS) can find the parts.
        self.add_class("pn-palette-control")
        self.result.add_class("pn-result")
        self.error_area.add_class("pn-error")

    def _build_colours(self) -> list:
        """Six colour pickers, each with L, C, h sliders; returns their columns."""
        self.pickers, self.sliders, columns = [], [], []
        for k in range(6):
            picker = widgets.ColorPicker(value=self._hex(k), description=f"colour {k + 1}", concise=False,
                                         layout=widgets.Layout(width="165px"),
                                         style={"description_width": "58px"})
            sl = {name: widgets.FloatSlider(min=lo, max=hi, step=SLIDER_STEP, description=name, readout_format=".0f",
                                            layout=widgets.Layout(width="165px"),
                                            style={"description_width": "14px"})
                  for name, (lo, hi) in (("L", L_RANGE), ("C", C_RANGE), ("h", H_RANGE))}
            picker.observe(self._callback(self._on_picker, k), names="value")
            for s in sl.values():
                s.observe(self._callback(self._on_lch, k), names="value")
            self.pickers.append(picker)
            self.sliders.append(sl)
            columns.append(widgets.VBox([picker, sl["L"], sl["C"], sl["h"]]))
        return columns

    def _build_palette_row(self) -> None:
        """The hue rotation of the whole palette, the palette-source menu, and the buttons."""
        self.hue_slider = widgets.FloatSlider(value=0.0, min=-180.0, max=180.0, step=1.0,
                                              description="rotate all hues (°)", readout_format=".0f",
                                              layout=widgets.Layout(width="420px"),
                                              style={"description_width": "130px"})
        self.hue_slider.observe(self._callback(lambda: self.update()), names="value")
        self.palette_source = widgets.Dropdown(options=[_THIS_PHOTO, *BUNDLED_NAMES], value=_THIS_PHOTO,
                                               layout=widgets.Layout(width="170px"))
        self.from_image_button = widgets.Button(description="palette from the image", icon="eyedropper",
                                                layout=widgets.Layout(width="190px"))
        self.from_image_button.on_click(self._callback(self._on_from_image))
        self.reset_button = widgets.Button(description="reset", icon="undo", layout=widgets.Layout(width="90px"))
        self.reset_button.on_click(self._callback(self._on_reset))

    @contextmanager
    def _hold(self):
        """Set widget values without their observers firing (no feedback loops)."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1

    def _callback(self, fn, *args):
        """An observer / click handler that does nothing while held and shows any error in the widget."""
        def handler(*_):
            if self._holding:
                return
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - shown in the widget, not swallowed
                self._show_error(e)
        return handler

    def _sync_sliders(self, k: int) -> None:
        L, C, h = lab_to_lch(rgb_to_lab(self._base[k], dim=-1))
        # Values on the sliders' step grid: a browser slider snaps an off-grid value and sends the snapped
        # one back, which would come in as a user edit after the hold and nudge the colour (a feedback loop).
        with self._hold():
            self.sliders[k]["L"].value = _on_grid(L, L_RANGE)
            self.sliders[k]["C"].value = _on_grid(C, C_RANGE)
            if C > 1e-3:  # a grey has no hue: leave the slider where it is
                self.sliders[k]["h"].value = _on_grid(h % 360.0, H_RANGE)

    def _on_picker(self, k: int) -> None:
        self._base[k] = parse_palette([p.value for p in self.pickers])[k]
        self._sync_sliders(k)
        self.update()

    def _on_lch(self, k: int) -> None:
        s = self.sliders[k]
        lab = lch_to_lab(s["L"].value, s["C"].value, s["h"].value)
        self._base[k] = _quantise(lab_to_rgb(lab, dim=-1, clip=True)[None])[0]  # out of gamut: clipped
        with self._hold():
            self.pickers[k].value = self._hex(k)
        self.update()

    def _on_from_image(self) -> None:
        src = self.palette_source.value
        self.set_palette(self.extracted if src == _THIS_PHOTO else _bundled_palette(src))

    def _on_reset(self) -> None:
        with self._hold():
            self.hue_slider.value = 0.0
            self.palette_source.value = _THIS_PHOTO
        self.set_palette(self.extracted)

    # -- updates and errors -----------------------------------------------------------------------------

    def update(self) -> bool:
        """Recompute the result for the current palette now; returns False (and shows why) on an error."""
        try:
            clock = Stopwatch()
            palette = self.current_palette()
            self.swatch.value = _swatch_html(palette)
            P_t = self.palette_lab_norm()
            self.last_palette_sent = P_t
            png = self.render_png(P_t)
        except Exception as e:  # noqa: BLE001 - shown in the widget, not swallowed
            self._show_error(e)
            return False
        self.result_png = png
        self.result.value = png
        self.last_update_ms = 1000 * clock.s
        (h, w), (H, W) = self.preview_size, self.size
        what = "A, β upsampled to" if self.engine.affine else "Îab upsampled to"
        self.status.value = (f"<span style='color:#666;font-size:90%'>RD at {w}×{h}, {what} "
                             f"{W}×{H}: {self.last_update_ms:.0f} ms</span>")
        self.error = ""
        self.error_area.value = ""
        return True

    def _show_error(self, e: BaseException) -> None:
        self.error = f"{type(e).__name__}: {e}"
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        self.error_area.value = (
            f"<div style='color:#b00020;font-weight:bold'>error: {html.escape(self.error)}</div>"
            f"<details><summary>traceback</summary><pre style='color:#b00020'>{html.escape(tb)}</pre></details>")


def _quantise(palette) -> torch.Tensor:
    """(6, 3) RGB rounded to 8 bits: the palette is exactly what the six pickers show ('#rrggbb')."""
    p = parse_palette(palette) if not torch.is_tensor(palette) else palette.detach().cpu().float()
    return p.clamp(0, 1).mul(255).round().div(255)


def _swatch_html(palette: torch.Tensor) -> str:
    """The target palette P_t as six labelled colour boxes."""
    cells = []
    for hx, rgb in zip(format_palette(palette), palette.tolist(), strict=True):
        ink = "#000" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 0.5 else "#fff"
        cells.append(f"<div style='background:{hx};color:{ink};width:70px;height:34px;display:flex;"
                     f"align-items:center;justify-content:center;font:11px monospace'>{hx}</div>")
    return ("<div style='display:flex;align-items:center;gap:2px'><b style='margin-right:8px'>target palette "
            "P<sub>t</sub></b>" + "".join(cells) + "</div>")
