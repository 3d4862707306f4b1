"""Tan, Echevarria, Gingold 2018: palette-based decomposition via RGBXY-space geometry (a baseline).

J. Tan, J. Echevarria, Y. Gingold, "Efficient palette-based decomposition and recoloring of images via
RGBXY-space geometry", ACM TOG 37(6) (SIGGRAPH Asia 2018), written from the paper: a later method than
PaletteNet (not in its §4.5) that newer palette recolouring work compares against. Its palette is the
simplified convex hull of the pixels (:func:`tan_palette`); each pixel is a convex mix of it, with
weights smooth in space (:func:`tan_layers`); a recolouring is then a weighted sum (:class:`TanLayers`).
:mod:`pnlib.baselines` re-exports these beside Chang et al.; :mod:`pnlib.protocols` evaluates them.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from .color import rgb_to_lab
from .palette import parse_palette

__all__ = ["tan_palette", "tan_layers", "tan_recolor", "TanLayers"]


def _palette(p, name: str) -> torch.Tensor:
    """Any palette form -> ``(k, 3)`` float64 RGB tensor in [0, 1] (also Chang et al.'s, :mod:`pnlib.baselines`)."""
    t = p.detach().cpu().double() if torch.is_tensor(p) else parse_palette(p).double()
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{name} must be a (k, 3) RGB palette, got shape {tuple(t.shape)}")
    return t.clamp(0.0, 1.0)


#: Tan et al.'s spatial coordinates: x and y scaled to [0, 1] (the long side), beside RGB in [0, 1].
TAN_XY_SCALE = 1.0


def _triples(m: int) -> np.ndarray:
    """Every triple of ``m`` indices, (C(m, 3), 3), cached."""
    if m not in _TRIPLES:
        _TRIPLES[m] = np.array(list(itertools.combinations(range(m), 3)), dtype=np.int64).reshape(-1, 3)
    return _TRIPLES[m]


_TRIPLES: dict = {}


def _collapse_lp(planes: np.ndarray, area: np.ndarray):
    """Tan et al. 2016's edge collapse: the new vertex v minimising the volume it adds to the hull.

    ``planes`` (m, 4): the unit outward planes n·x + d = 0 of the faces around the edge, ``area`` (m,)
    their areas. v must lie on or outside every plane (the hull only grows, so it still encloses every
    pixel); the added volume is Σ_f area_f (n_f·v + d_f) / 3, linear in v. A linear programme in three
    unknowns: its optimum is a vertex of the feasible region, the meeting point of three planes, so every
    triple is solved and the feasible one of least volume kept (exact, and vectorised; the sum of the
    planes' normals, weighted by area, points into the cone of the normals, so the optimum is bounded).
    Returns (added volume, v), or (inf, None) when no three planes meet (never on a closed hull).
    """
    t = _triples(len(planes))
    A, b = planes[t, :3], -planes[t, 3]
    ok = np.abs(np.linalg.det(A)) > 1e-12
    if not ok.any():
        return np.inf, None
    v = np.linalg.solve(A[ok], b[ok][..., None])[..., 0]                      # (T, 3)
    v = v[(v @ planes[:, :3].T + planes[:, 3] >= -1e-9).all(1)]
    if not len(v):
        return np.inf, None
    added = (v @ planes[:, :3].T + planes[:, 3]) @ area / 3.0
    i = int(np.argmin(added))
    return float(added[i]), v[i]


def _hull(points: np.ndarray):
    from scipy.spatial import ConvexHull, QhullError
    try:
        return ConvexHull(points)
    except QhullError:  # flat or too few colours (a two-colour image): joggle the input (qhull's QJ)
        return ConvexHull(points, qhull_options="QJ")


def _cheapest_collapse(hull, V: np.ndarray, ids: list, cache: dict):
    """The edge of ``hull`` (vertices ``V``) whose collapse adds the least volume: (volume, (u, w), v).

    Each edge's cost depends only on its two vertices and the faces around them, so it is cached under
    their stable names ``ids``: after a collapse only the edges near the new vertex are solved again.
    """
    S, planes = hull.simplices, hull.equations
    P = V[S]
    area = 0.5 * np.linalg.norm(np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]), axis=1)
    faces_of = [[] for _ in range(len(V))]
    for f, s in enumerate(S):
        for i in s:
            faces_of[i].append(f)
    face_key = [tuple(sorted(ids[i] for i in s)) for s in S]
    edges = {(min(a, b), max(a, b)) for s in S for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2]))}
    best = (np.inf, None, None)
    for u, w in edges:
        F = sorted(set(faces_of[u]) | set(faces_of[w]))
        key = (ids[u], ids[w], frozenset(face_key[f] for f in F))
        if key not in cache:
            cache[key] = _collapse_lp(planes[F], area[F])
        c, v = cache[key]
        if c < best[0]:
            best = (c, (u, w), v)
    return best


def tan_palette(rgb, k: int = 6, clip: bool = True) -> torch.Tensor:
    """Tan et al.'s palette: the convex hull of the pixels in RGB, simplified to ``k`` vertices -> (k, 3).

    Tan, Echevarria, Gingold 2018, after Tan, Lien, Gingold 2016 (TOG 36(1)): every pixel is a convex mix of the
    palette colours exactly when the palette's convex hull encloses the pixels' colours. Start from the
    hull of the pixels and collapse one edge at a time, each time the edge whose collapse adds the least
    volume (:func:`_collapse_lp`), until ``k`` vertices remain; the hull only grows, so it keeps
    enclosing every pixel (Sander et al.'s progressive hulls). The vertices may then lie outside the RGB
    cube: they are clipped to it, as the authors' code does, so a few pixels can fall outside the
    palette's hull and come back slightly changed (the evaluation's "own palette" column measures it;
    keeping the vertices inside the cube during the collapses was tried and was worse on 3 of 8 bundled
    photos). Sorted by luminance, darkest first. ``rgb``: ``(3, H, W)`` in [0, 1] or ``(N, 3)`` colours;
    ``clip=False`` returns the vertices before the clip (for tests and figures).
    """
    pts = _pixels(rgb)
    hull = _hull(pts)
    V = pts[hull.vertices]
    ids = list(range(len(V)))            # a stable name per vertex, so unchanged edges keep their cost
    next_id, cache = len(V), {}
    while len(V) > k:
        hull = _hull(V)
        if len(hull.vertices) < len(V):            # the collapse swallowed vertices: drop them
            V, ids = V[hull.vertices], [ids[i] for i in hull.vertices]
            if len(V) <= k:
                break
            hull = _hull(V)
        best = _cheapest_collapse(hull, V, ids, cache)
        if best[1] is None:          # no collapse possible (degenerate hull): keep what there is
            break
        _, (u, w), v = best
        rest = np.ones(len(V), dtype=bool)
        rest[[u, w]] = False
        V = np.vstack([V[rest], v])
        ids = [i for i, r in zip(ids, rest, strict=True) if r] + [next_id]
        next_id += 1
    V = np.clip(V, 0.0, 1.0) if clip else V
    pal = torch.from_numpy(V).double()
    pal = pal[torch.argsort(rgb_to_lab(pal.clamp(0, 1), dim=-1)[:, 0], stable=True)]
    return pal.float() if clip else pal


def _pixels(rgb) -> np.ndarray:
    if torch.is_tensor(rgb) and rgb.ndim == 3 and rgb.shape[0] == 3:
        return rgb.detach().cpu().double().clamp(0, 1).reshape(3, -1).T.numpy()
    a = np.asarray(rgb.detach().cpu() if torch.is_tensor(rgb) else rgb, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"Tan et al.'s palette wants a (3, H, W) RGB image or (N, 3) colours, got shape {a.shape}")
    return np.clip(a, 0.0, 1.0)


def _barycentric(tri, x: np.ndarray):
    """Barycentric coordinates of points ``x`` in a scipy Delaunay tessellation: (simplex index (-1:
    outside), (N, d + 1) coordinates)."""
    s = tri.find_simplex(x)
    T = tri.transform[np.maximum(s, 0)]
    d = x.shape[1]
    b = np.einsum("nij,nj->ni", T[:, :d], x - T[:, d])
    return s, np.hstack([b, 1.0 - b.sum(1, keepdims=True)])


def _mix_weights(palette: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weights ``(N, k)`` ≥ 0, summing to 1, that mix ``palette`` (k, 3) into each colour of ``x`` (N, 3).

    Inside the palette's hull: barycentric coordinates in its Delaunay tetrahedra (our choice of
    tessellation; any one reproduces the colour). Outside (only when vertices were clipped to the cube)
    or with a flat palette: non-negative least squares with the sum-to-one row weighted ×100, i.e. the
    nearest mix.
    """
    from scipy.optimize import nnls
    from scipy.spatial import Delaunay, QhullError
    k = len(palette)
    W = np.zeros((len(x), k))
    out = np.ones(len(x), dtype=bool)
    try:
        tri = Delaunay(palette)
        s, b = _barycentric(tri, x)
        inside = (s >= 0) & (b >= -1e-9).all(1)
        W[np.nonzero(inside)[0][:, None], tri.simplices[s[inside]]] = np.clip(b[inside], 0, None)
        out = ~inside
    except QhullError:  # a flat palette has no tetrahedra: every colour takes the fallback
        pass
    A = np.vstack([palette.T, 100.0 * np.ones((1, k))])
    for i in np.nonzero(out)[0]:
        W[i] = nnls(A, np.append(x[i], 100.0))[0]
    return W / W.sum(1, keepdims=True)


class TanLayers:
    """Tan et al. 2018's decomposition of one photo: its palette (k, 3) and per-pixel weights (k, H, W).

    Built by :func:`tan_layers`; :meth:`recolor` mixes new palette colours with the same weights. The
    attributes ``seconds`` (time to build) and ``n_rgbxy`` (vertices of the 5-D hull) are reported by
    the evaluation.
    """

    def __init__(self, palette: torch.Tensor, weights: torch.Tensor, seconds: float, n_rgbxy: int):
        self.palette, self.weights, self.seconds, self.n_rgbxy = palette, weights, seconds, n_rgbxy

    def recolor(self, target_palette) -> torch.Tensor:
        """The photo with palette colour i replaced by colour i of ``target_palette`` -> (3, H, W) RGB.

        Each pixel is Σ_i w_i(x) P_t,i: a weighted sum, milliseconds at any size (Tan et al. §4).
        """
        tgt = _palette(target_palette, "target_palette").float()
        if tgt.shape != self.palette.shape:
            raise ValueError(f"target palette has {tgt.shape[0]} colours, Tan et al.'s palette "
                             f"{self.palette.shape[0]}")
        return torch.einsum("khw,kc->chw", self.weights, tgt).clamp(0.0, 1.0)


def tan_layers(rgb: torch.Tensor, k: int = 6, palette=None) -> TanLayers:
    """Tan, Echevarria, Gingold 2018, "Efficient palette-based decomposition and recoloring of images via
    RGBXY-space geometry" (SIGGRAPH Asia): per-pixel mixing weights of the palette, written from the paper.

    1. the palette: the simplified convex hull in RGB (:func:`tan_palette`), unless ``palette`` is given
       (a (k, 3) tensor, used as is: ``tan_palette(..., clip=False)`` gives exact weights);
    2. each pixel as a point (R, G, B, x, y) in 5-D (x, y scaled to [0, 1] along the long side, times
       :data:`TAN_XY_SCALE`); the convex hull of those points has few vertices (hundreds to thousands),
       and the Delaunay tessellation of those vertices gives each pixel barycentric weights over six of
       them (W_RGBXY). Nearby pixels of one colour share vertices: the weights are smooth in space;
    3. each 5-D vertex's colour as a mix of the palette (W_RGB, :func:`_mix_weights`);
    4. a pixel's palette weights are W_RGBXY · W_RGB: non-negative, summing to 1, and mixing the palette
       back into the pixel's colour exactly when the palette's hull encloses it.
    A pixel that the 5-D tessellation misses by rounding takes its colour's W_RGB directly.
    ``rgb``: (3, H, W) in [0, 1]. Returns :class:`TanLayers`.
    """
    from scipy.spatial import Delaunay, QhullError
    t0 = time.perf_counter()
    if not torch.is_tensor(rgb) or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"tan_layers wants a (3, H, W) RGB tensor, got {getattr(rgb, 'shape', type(rgb))}")
    H, W = rgb.shape[-2:]
    px = _pixels(rgb)
    pal = tan_palette(px, k) if palette is None else torch.as_tensor(palette).detach().cpu().double()
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f"palette must be a (k, 3) RGB palette, got shape {tuple(pal.shape)}")
    P = pal.double().numpy()
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    xy = np.stack([xx.ravel(), yy.ravel()], 1) / max(H - 1, W - 1, 1) * TAN_XY_SCALE
    X = np.hstack([px, xy])
    hull = _hull(X)
    verts = X[hull.vertices]
    w_rgb = _mix_weights(P, verts[:, :3])                                     # (M, k)
    try:
        tri = Delaunay(verts)
        s, b = _barycentric(tri, X)
        ok = (s >= 0) & (b >= -1e-7).all(1)
        Wpx = np.einsum("nj,njk->nk", np.clip(b, 0, None), w_rgb[tri.simplices[np.maximum(s, 0)]])
    except QhullError:  # a degenerate 5-D hull: every pixel by its colour alone
        ok = np.zeros(len(X), dtype=bool)
        Wpx = np.zeros((len(X), len(P)))
    if (~ok).any():
        Wpx[~ok] = _mix_weights(P, px[~ok])
    Wpx /= Wpx.sum(1, keepdims=True)
    weights = torch.from_numpy(Wpx.T.reshape(len(P), H, W)).float()
    return TanLayers(pal.float(), weights, time.perf_counter() - t0, len(verts))


def tan_recolor(rgb: torch.Tensor, target_palette, layers: TanLayers | None = None) -> torch.Tensor:
    """Recolour ``rgb`` (3, H, W) by Tan et al. 2018: its palette's colour i becomes ``target_palette``'s
    colour i (:func:`tan_layers`; pass ``layers`` to reuse a decomposition). Returns (3, H, W) RGB."""
    layers = layers if layers is not None else tan_layers(rgb, k=len(_palette(target_palette, "target_palette")))
    return layers.recolor(target_palette).to(rgb.device)
