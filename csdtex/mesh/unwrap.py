"""UV unwrapping with xatlas: :func:`unwrap_uvs`.

xatlas runs in a child process (:mod:`csdtex.mesh.xatlas_child`): it segfaults on some inputs (e.g. trimesh's 80k-face
icosphere crashes while packing in xatlas-python 0.0.11), which would otherwise kill the whole csdtex process without a
message. A crash or error of the child becomes a one-line :class:`~csdtex.errors.MeshError`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from csdtex.errors import ConfigError, MeshError
from csdtex.io._common import error_text
from csdtex.mesh.types import Material, Mesh, unique_name
from csdtex.mesh.validate import _face_double_areas, degenerate_faces, validate_mesh

__all__ = ["unwrap_uvs"]

_XATLAS_CHILD = Path(__file__).with_name("xatlas_child.py")
"""The child script; run by path (see :func:`_xatlas_child_command`)."""

# Runs the script given as the first argument as __main__ without putting its folder on sys.path.
_RUN_PATH = "import runpy, sys; runpy.run_path(sys.argv.pop(1), run_name='__main__')"


def _xatlas_child_command() -> list[str]:
    """The command that starts the xatlas child; the driver appends IN, OUT and OPTIONS (tests replace this)."""
    return [sys.executable, "-c", _RUN_PATH, str(_XATLAS_CHILD)]


def unwrap_uvs(mesh: Mesh, texture_size: int = 1024, force: bool = False) -> Mesh:
    """Give every face UVs with xatlas, never changing ``vertices`` or ``faces``.

    - Every face already has UVs and not ``force``: ``mesh`` is returned unchanged (same object).
    - No UVs at all, or ``force``: all faces are unwrapped into one atlas and one material (material 0's name and
      base colour, factors and ``double_sided`` are kept; its texture, alpha and maps are dropped since they belonged
      to the old UVs); ``face_materials`` = 0.
    - Some faces without UVs (``uv_faces`` rows of -1, e.g. a glTF primitive without ``TEXCOORD_0``): only those
      faces are unwrapped, into a NEW material appended to ``materials`` (named ``unwrapped``, base colour of the
      material most of them had); all other faces keep their UVs and materials bit for bit. Materials whose faces
      all moved stay in the list with no faces.

    The atlas is packed for a ``texture_size`` x ``texture_size`` texture with ``max(2, texture_size // 256)`` texels
    of padding between charts and the same texel density for all charts (UV space is scaled uniformly). Degenerate
    faces are accepted (they get zero-area UV triangles). New ``uvs`` are float64 in [0, 1], (0, 0) = bottom-left.

    Args:
        mesh: a valid mesh (see :func:`validate_mesh`).
        texture_size: texture resolution the charts and padding are planned for, 16 to 16384.
        force: re-unwrap everything even if the mesh has UVs.
    Returns:
        a new :class:`Mesh` (``copy_with``) with ``uvs``, ``uv_faces``, ``face_materials`` and ``materials`` set.
    Raises:
        ConfigError: bad ``texture_size``. MeshError: invalid mesh, xatlas missing or crashing.
    """
    if isinstance(texture_size, bool) or not isinstance(texture_size, (int, np.integer)) or not (
        16 <= texture_size <= 16384
    ):
        raise ConfigError(f"texture_size must be an integer in [16, 16384], got {texture_size!r}")
    validate_mesh(mesh)
    if mesh.has_uvs and not force:
        return mesh
    full = force or mesh.uv_faces is None or bool((mesh.uv_faces < 0).all())
    selected = np.arange(mesh.num_faces) if full else np.flatnonzero((mesh.uv_faces < 0).any(axis=1))
    new_uvs, new_uv_faces = _xatlas_unwrap(mesh, mesh.faces[selected], int(texture_size))

    if full:
        first = mesh.materials[0]
        return mesh.copy_with(
            uvs=new_uvs,
            uv_faces=new_uv_faces,
            face_materials=np.zeros(mesh.num_faces, dtype=np.int64),
            materials=[Material(first.name, base_color=first.base_color, metallic_factor=first.metallic_factor,
                                roughness_factor=first.roughness_factor, emissive_factor=first.emissive_factor,
                                emissive_strength=first.emissive_strength, double_sided=first.double_sided)],
            warnings=list(mesh.warnings),
        )
    uvs = np.concatenate([mesh.uvs, new_uvs])
    uv_faces = mesh.uv_faces.copy()
    uv_faces[selected] = new_uv_faces + len(mesh.uvs)
    face_materials = mesh.face_materials.copy()
    most_common = int(np.bincount(face_materials[selected]).argmax())
    name = unique_name("unwrapped", {m.name for m in mesh.materials})
    face_materials[selected] = len(mesh.materials)
    materials = list(mesh.materials) + [Material(name, base_color=mesh.materials[most_common].base_color)]
    return mesh.copy_with(uvs=uvs, uv_faces=uv_faces, face_materials=face_materials, materials=materials,
                          warnings=list(mesh.warnings))


def _xatlas_unwrap(mesh: Mesh, faces: np.ndarray, texture_size: int) -> tuple[np.ndarray, np.ndarray]:
    """UVs float64 [K, 2] in [0, 1] and uv_faces int64 [len(faces), 3] (into them) for ``faces`` of ``mesh``.

    Only non-degenerate faces go to xatlas; a degenerate face gets, per corner, an atlas vertex of the same input
    vertex (or a UV point at (0, 0) when that vertex has none), i.e. a zero-area UV triangle.
    """
    where = f"mesh file '{mesh.source}'" if mesh.source is not None else "mesh"
    degenerate = degenerate_faces(mesh.vertices, faces)
    good = faces[~degenerate]
    if len(good) == 0:
        return np.zeros((1, 2)), np.zeros_like(faces)
    used, local_faces = np.unique(good, return_inverse=True)
    local_faces = local_faces.reshape(-1, 3).astype(np.int64)
    vmapping, indices, uvs = _run_xatlas(mesh.vertices[used], local_faces, texture_size, where)
    if indices.shape == local_faces.shape and (vmapping[indices] == local_faces).all():
        good_uv_faces = indices  # xatlas kept the face order and corner order (the usual case)
    else:
        good_uv_faces = _match_atlas_faces(local_faces, vmapping, indices)
    uvs = np.clip(np.nan_to_num(uvs, nan=0.0), 0.0, 1.0)
    uv_faces = np.empty_like(faces)
    uv_faces[~degenerate] = good_uv_faces
    if degenerate.any():
        atlas_vertex = np.full(len(mesh.vertices), len(uvs), dtype=np.int64)  # default: the extra (0, 0) point
        atlas_vertex[used[vmapping]] = np.arange(len(vmapping))
        uv_faces[degenerate] = atlas_vertex[faces[degenerate]]
        uvs = np.concatenate([uvs, np.zeros((1, 2))])
    return uvs, uv_faces


def _run_xatlas(positions: np.ndarray, faces: np.ndarray, texture_size: int,
                where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas's (vmapping int64 [K], indices int64 [F', 3], uvs float64 [K, 2]) for one mesh, in a child process."""
    import importlib.util

    if importlib.util.find_spec("xatlas") is None:
        raise MeshError(f"{where} needs UVs but xatlas is not installed: pip install xatlas (or give the mesh UVs)")
    # unit-sphere coordinates: xatlas works in float32 and its texel density is per world unit
    center = (positions.min(axis=0) + positions.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(positions - center, axis=1).max())
    positions = (positions - center) / (radius if radius > 0 else 1.0)
    area = 0.5 * float(_face_double_areas(positions, faces).sum())
    # first guess of the texel density: charts cover about 45% of the square (lowered by retries in the child)
    texels_per_unit = texture_size * float(np.sqrt(0.45 / max(area, 1e-12)))
    options = dict(resolution=texture_size, padding=max(2, texture_size // 256), texels_per_unit=texels_per_unit,
                   attempts=8)
    with tempfile.TemporaryDirectory(prefix="csdtex-xatlas-") as tmp:
        in_path, out_path = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(in_path, vertices=positions.astype(np.float32), faces=faces.astype(np.uint32))
        try:
            proc = subprocess.run(
                [*_xatlas_child_command(), str(in_path), str(out_path), json.dumps(options)],
                capture_output=True, text=True,
            )
        except OSError as err:  # no usable interpreter path (embedded Python), fork limits, ...
            raise MeshError(
                f"could not start xatlas to unwrap {where} ({error_text(err)}): give the mesh UVs in a 3D tool"
            ) from err
        if proc.returncode != 0 or not out_path.exists():
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            reason = f"exit code {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
            if lines:
                reason += f": {lines[-1].strip()[:160]}"
            raise MeshError(
                f"xatlas failed to unwrap {where} ({len(faces)} faces; {reason}): give the mesh UVs in a 3D tool "
                "(e.g. Blender Smart UV Project) or simplify it"
            )
        with np.load(out_path) as result:
            return result["vmapping"], result["indices"], result["uvs"]


def _match_atlas_faces(faces: np.ndarray, vmapping: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """uv_faces [F, 3] for ``faces`` when xatlas reordered (or dropped) faces: match them by their vertex triples.

    A face without a match gets, per corner, any atlas vertex made from the same input vertex (a degenerate UV
    triangle is better than none).
    """
    original = vmapping[indices]
    pool: dict[tuple[int, ...], list[int]] = {}
    for j, row in enumerate(original.tolist()):
        pool.setdefault(tuple(sorted(row)), []).append(j)
    any_atlas_vertex = np.zeros(int(faces.max()) + 1, dtype=np.int64)
    any_atlas_vertex[vmapping] = np.arange(len(vmapping))
    uv_faces = np.empty_like(faces)
    for i, row in enumerate(faces.tolist()):
        candidates = pool.get(tuple(sorted(row)))
        if candidates:
            j = candidates.pop()
            out = original[j].tolist()
            uv_faces[i] = [indices[j, out.index(vertex)] for vertex in row]
        else:
            uv_faces[i] = any_atlas_vertex[row]
    return uv_faces
