"""xatlas UV unwrapping, run in a child process by :mod:`csdtex.mesh.unwrap`.

xatlas segfaults on some inputs (e.g. trimesh's 80k-face icosphere crashes while packing in xatlas-python 0.0.11),
which would kill the whole csdtex process without a message; in a child process a crash becomes a one-line
:class:`~csdtex.errors.MeshError` instead.

This file imports only numpy and xatlas, never csdtex, so the child starts fast and works wherever the parent found
csdtex (installed or from a source checkout). The driver runs it by path, without adding its folder to ``sys.path``
(which would let ``csdtex/mesh/types.py`` shadow the standard library's ``types``)::

    python -c "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__main__')" xatlas_child.py IN OUT OPTIONS

``python -m csdtex.mesh.xatlas_child IN OUT OPTIONS`` works too, where csdtex is importable.

Arguments:
    IN: ``.npz`` with ``vertices`` float32 [V, 3] (the driver normalizes them into the unit sphere, since xatlas works
        in float32 and its texel density is per world unit) and ``faces`` uint32 [F, 3].
    OUT: ``.npz`` to write (only on success): ``vmapping`` int64 [K] (input vertex of every atlas vertex),
        ``indices`` int64 [F', 3] (atlas vertices of every face, as xatlas returns them), ``uvs`` float64 [K, 2]
        in [0, 1], and the diagnostics ``charts``, ``width``, ``height``, ``square``, ``attempts``, ``utilization``.
    OPTIONS: JSON object with ``resolution`` (texels per side), ``padding`` (texels), ``texels_per_unit`` (first
        guess of the texel density) and ``attempts`` (how many densities to try, each 15% lower, for one square
        atlas).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _generate(vertices: np.ndarray, faces: np.ndarray, resolution: int, padding: int, texels_per_unit: float):
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, faces)
    pack = xatlas.PackOptions()
    pack.resolution = resolution
    pack.padding = padding
    pack.texels_per_unit = texels_per_unit
    pack.bilinear = True
    pack.rotate_charts = True
    atlas.generate(xatlas.ChartOptions(), pack)
    return atlas


def unwrap(vertices: np.ndarray, faces: np.ndarray, options: dict) -> dict[str, np.ndarray]:
    """One xatlas atlas for ``vertices`` float32 [V, 3] and ``faces`` uint32 [F, 3]; the arrays OUT holds (see above).

    Lowers the texel density up to ``options["attempts"]`` times until the charts fit one square atlas of
    ``options["resolution"]`` texels; if they never do, takes one atlas of xatlas's own size and rescales its UVs
    uniformly into [0, 1] (``square`` is then False).
    """
    resolution, padding = options["resolution"], options["padding"]
    texels_per_unit = options["texels_per_unit"]
    for attempt in range(options["attempts"]):
        atlas = _generate(vertices, faces, resolution, padding, texels_per_unit)
        if atlas.atlas_count == 1:
            break
        texels_per_unit *= 0.85
    square = atlas.atlas_count == 1
    if not square:  # give up on a fixed square atlas: one atlas of xatlas's own size, rescaled uniformly below
        atlas = _generate(vertices, faces, resolution, padding, 0.0)
    vmapping, indices, uvs = atlas[0]
    uvs = uvs.astype(np.float64)
    if not square:
        uvs = uvs * np.array([atlas.width, atlas.height], dtype=np.float64) / max(atlas.width, atlas.height)
    return dict(vmapping=vmapping.astype(np.int64), indices=indices.astype(np.int64), uvs=uvs,
                charts=atlas.chart_count, width=atlas.width, height=atlas.height, square=square, attempts=attempt + 1,
                utilization=float(np.mean(atlas.utilization)))


def main(argv: list[str]) -> None:
    """``argv`` = [IN, OUT, OPTIONS] (see the module docstring)."""
    in_path, out_path, options = argv
    with np.load(in_path) as data:
        vertices, faces = data["vertices"], data["faces"]
    np.savez(out_path, **unwrap(vertices, faces, json.loads(options)))


if __name__ == "__main__":
    main(sys.argv[1:])
