"""Meshes: data types, validation, UV unwrapping, seams and analysis; loading lives in :mod:`csdtex.io`.

Modules:

- :mod:`csdtex.mesh.types`: :class:`Material`, :class:`Mesh` (with :meth:`Mesh.to_render`), :func:`weld_positions`,
  :func:`vertex_normals`. The coordinate, UV and texture conventions of the whole package are described there.
- :mod:`csdtex.mesh.validate`: :func:`validate_mesh`, :func:`degenerate_faces`.
- :mod:`csdtex.mesh.unwrap`: :func:`unwrap_uvs` (xatlas, run in a child process by
  :mod:`csdtex.mesh.xatlas_child`).
- :mod:`csdtex.mesh.seams`: :func:`seam_edges` / :class:`SeamEdges`.
- :mod:`csdtex.mesh.analysis`: :func:`analyze_mesh` / :class:`MeshReport`, :func:`uv_overlap_fraction`.

Re-exported here so that ``from csdtex.mesh import X`` works for every public name: the above, :func:`load_mesh`,
``SUPPORTED_EXTENSIONS`` and ``SUPPORTED_FORMATS`` from :mod:`csdtex.io`, and :class:`RenderMesh` from
:mod:`csdtex.render.mesh`.
"""

from __future__ import annotations

from csdtex.mesh.types import (MAP_SLOTS, UP_AXES, Material, MaterialMap, Mesh, up_axis_rotation, vertex_normals,
                               weld_positions)
from csdtex.mesh.validate import degenerate_faces, validate_mesh
from csdtex.mesh.unwrap import unwrap_uvs
from csdtex.mesh.seams import SeamEdges, seam_edges
from csdtex.mesh.analysis import MeshReport, analyze_mesh, uv_overlap_fraction
from csdtex.render.mesh import RenderMesh

# No import cycle: csdtex.io imports its readers (which import csdtex.mesh.types) only inside load_mesh.
from csdtex.io import SUPPORTED_EXTENSIONS, SUPPORTED_FORMATS, load_mesh

__all__ = [
    "MAP_SLOTS",
    "Material",
    "MaterialMap",
    "Mesh",
    "MeshReport",
    "RenderMesh",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "SeamEdges",
    "UP_AXES",
    "analyze_mesh",
    "degenerate_faces",
    "load_mesh",
    "up_axis_rotation",
    "seam_edges",
    "unwrap_uvs",
    "uv_overlap_fraction",
    "validate_mesh",
    "vertex_normals",
    "weld_positions",
]
