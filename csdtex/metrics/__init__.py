"""Texture quality metrics and benchmarks.

- :mod:`csdtex.metrics.seams`: :func:`~csdtex.metrics.seams.seam_metrics` (seam, interior and bleed RMS per mip level,
  texel-density ratio across seams).
- :mod:`csdtex.metrics.meshes`: deterministic procedural benchmark meshes (many charts, mismatched densities).
- :mod:`csdtex.metrics.targets`: the detailed procedural reference texture of ``--target procedural``.
- :mod:`csdtex.metrics.bench`: ``csdtex bench seams`` (methods ``field``, ``field-noerase``, ``field-erase``,
  ``field-nofill``, ``field-dilate``, ``uv``, ``reference``; targets ``prompt`` and ``procedural``);
  :mod:`csdtex.metrics.figure` draws its figure.

The seam fix itself (multi-mip seam erasure, on by default in :func:`csdtex.bake.bake_texture`) lives in
:mod:`csdtex.seam_erasure`.
"""
