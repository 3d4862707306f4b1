"""pnlib: a small, readable implementation of PaletteNet (Cho et al., CVPR Workshops 2017).

Layers, lowest first (a module imports only modules before it in this list; tests/test_layers.py
reads the imports and checks it):
config -> color -> palette -> photos -> data -> correspondence -> regions -> model -> checkpoint -> losses ->
metrics -> inference -> rgbxy -> baselines -> protocols -> evaluate -> train -> experiments -> exercises -> scaling ->
viz -> widgets -> runner -> site -> bench -> __main__.
(`inference` holds `load_model` and `recolor`; a module named `recolor` would shadow the function.
It sits below `train`, so recolouring a photo never loads the training loop.) Every module stays
within 450 lines and every function within 50 (tests/test_layers.py checks both). See README.md,
"Notes for maintainers".
"""
__all__ = ["load_model", "recolor", "palette_of"]


def __getattr__(name):
    # Lazy, so `import pnlib.color` stays light; `pnlib.recolor(...)` still works.
    if name in ("load_model", "recolor", "palette_of"):
        from . import inference as _r
        return getattr(_r, name)
    raise AttributeError(f"module 'pnlib' has no attribute {name!r}")
