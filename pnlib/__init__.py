"""pnlib: a small, readable implementation of PaletteNet (Cho et al., CVPR Workshops 2017).

Layers, lowest first (a module imports only those above it in this list):
color -> palette -> data -> model -> losses -> metrics -> train -> inference -> baselines ->
evaluate -> viz -> widgets -> runner, bench.
(`inference` holds `load_model` and `recolor`; a module named `recolor` would shadow the function.)
See DESIGN.md in the project notes and README.md.
"""
__all__ = ["load_model", "recolor"]


def __getattr__(name):
    # Lazy, so `import pnlib.color` stays light; `pnlib.recolor(...)` still works.
    if name in ("load_model", "recolor"):
        from . import inference as _r
        return getattr(_r, name)
    raise AttributeError(f"module 'pnlib' has no attribute {name!r}")
