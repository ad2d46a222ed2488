"""Mesh analysis for ``csdtex info``: :func:`analyze_mesh` / :class:`MeshReport`, and :func:`uv_overlap_fraction`.

Seam edges are found by :func:`csdtex.mesh.seams.seam_edges`; charts are counted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from csdtex.mesh.seams import _canonical_uv_faces, _seam_edges, _WeldedEdges
from csdtex.mesh.types import Mesh
from csdtex.mesh.validate import degenerate_faces, validate_mesh
from csdtex.sampling import baked_samplers, wrap_uv_triangles
from csdtex.wording import counted

__all__ = ["MeshReport", "analyze_mesh", "shared_texel_fractions", "udim_hint", "udim_tiles", "uv_area_fractions",
           "uv_overlap_fraction"]


@dataclass
class MeshReport:
    """What ``csdtex info`` prints about a mesh (see :func:`analyze_mesh`).

    Attributes:
        num_vertices: number of vertices as stored (not welded).
        num_faces: number of triangles.
        has_uvs: every face has UVs.
        num_materials: number of materials (texture images).
        num_charts: UV charts = connected groups of faces sharing UV vertices, counted per material over faces with
            UVs; None when the mesh has no UVs.
        bbox_min: float64 [3], smallest input coordinate per axis.
        bbox_max: float64 [3], largest input coordinate per axis.
        num_seam_edges: edges shared by exactly two faces in 3D (after welding equal positions) whose two sides do
            not use the same UV coordinates at both ends (or belong to different materials); None without UVs.
            The edges themselves: :func:`csdtex.mesh.seams.seam_edges`.
        seam_length: total 3D length of the seam edges (input units); None without UVs.
        seam_length_fraction: seam_length / total length of all welded edges, in [0, 1]; None without UVs.
        density_ratio_median: texel-density ratio across seams (texels per unit 3D length along the edge, larger side
            over smaller, assuming equally sized textures for all materials), the length-weighted median; None
            without seams. 1 = both sides equally dense.
        density_mismatch_share: share of the seam length whose density ratio is 2 or more, in [0, 1]; None without
            seams. A large share is a risky layout: mipmapped seams show (fine detail on one side only).
        problems: human-readable findings (degenerate faces, UVs outside [0, 1], overlapping UVs, non-manifold
            edges, duplicate faces, faces without UVs, loader warnings); empty when nothing was found.
        source: the mesh file, if any.
        extensions: glTF extensions the file uses, name -> True when csdtex applies it (empty for other formats).
        vertex_colors: the mesh has per-vertex colours (glTF ``COLOR_0``, OBJ/PLY colours).
        textures: one line per material: texture size, sampler, texture transform (or its base colour).
    """

    num_vertices: int
    num_faces: int
    has_uvs: bool
    num_materials: int
    num_charts: int | None
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    num_seam_edges: int | None
    problems: list[str] = field(default_factory=list)
    source: str | None = None
    seam_length: float | None = None
    seam_length_fraction: float | None = None
    density_ratio_median: float | None = None
    density_mismatch_share: float | None = None
    extensions: dict[str, bool] = field(default_factory=dict)
    vertex_colors: bool = False
    textures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serializable dict (plain ints, floats, lists, None) with the attribute names as keys."""
        return {
            "source": self.source,
            "num_vertices": int(self.num_vertices),
            "num_faces": int(self.num_faces),
            "has_uvs": bool(self.has_uvs),
            "num_materials": int(self.num_materials),
            "num_charts": None if self.num_charts is None else int(self.num_charts),
            "bbox_min": [float(x) for x in self.bbox_min],
            "bbox_max": [float(x) for x in self.bbox_max],
            "num_seam_edges": None if self.num_seam_edges is None else int(self.num_seam_edges),
            "seam_length": None if self.seam_length is None else float(self.seam_length),
            "seam_length_fraction": None if self.seam_length_fraction is None else float(self.seam_length_fraction),
            "density_ratio_median": None if self.density_ratio_median is None else float(self.density_ratio_median),
            "density_mismatch_share": (None if self.density_mismatch_share is None
                                       else float(self.density_mismatch_share)),
            "problems": list(self.problems),
            "gltf_extensions": {name: ("supported" if applied else "ignored")
                                for name, applied in self.extensions.items()},
            "vertex_colors": bool(self.vertex_colors),
            "materials": list(self.textures),
        }

    def to_text(self) -> str:
        """Aligned ``key: value`` lines, problems listed one per line under ``problems:``."""

        def vec(values: np.ndarray) -> str:
            return " ".join(f"{float(x):.6g}" for x in values)

        size = np.asarray(self.bbox_max, dtype=np.float64) - np.asarray(self.bbox_min, dtype=np.float64)
        rows = [("file", self.source)] if self.source is not None else []
        rows += [
            ("vertices", str(self.num_vertices)),
            ("faces", str(self.num_faces)),
            ("materials", str(self.num_materials)),
            ("UVs", "yes" if self.has_uvs else ("partial" if self.num_charts else "no")),
            ("UV charts", "-" if self.num_charts is None else str(self.num_charts)),
            ("UV seam edges", "-" if self.num_seam_edges is None else str(self.num_seam_edges)),
            ("seam length", "-" if self.seam_length is None else
             f"{self.seam_length:.6g} ({100.0 * (self.seam_length_fraction or 0.0):.1f}% of all edge length)"),
            ("density ratio", "-" if self.density_ratio_median is None else
             f"median {self.density_ratio_median:.2f}x across seams; {100.0 * self.density_mismatch_share:.0f}% of "
             "the seam length at 2x or more"),
            ("bbox min", vec(self.bbox_min)),
            ("bbox max", vec(self.bbox_max)),
            ("bbox size", vec(size)),
            ("colours", "per vertex" if self.vertex_colors else "none per vertex"),
        ]
        if self.extensions:
            supported = [name for name, applied in self.extensions.items() if applied]
            ignored = [name for name, applied in self.extensions.items() if not applied]
            text = ", ".join(supported) if supported else "none supported"
            if ignored:
                text += f" (not supported, ignored: {', '.join(ignored)})"
            rows.append(("glTF extensions", text))
        rows += [(f"material {i}", line) for i, line in enumerate(self.textures)]
        rows.append(("problems", str(len(self.problems)) if self.problems else "none"))
        width = max(len(key) for key, _ in rows) + 1
        lines = [f"{key + ':':<{width}} {value}" for key, value in rows]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def analyze_mesh(mesh: Mesh, overlap_resolution: int = 256) -> MeshReport:
    """Count charts and seams and look for problems; see :class:`MeshReport` for what each number means.

    Positions are welded with :func:`~csdtex.mesh.types.weld_positions` (exact duplicates) for seams (see
    :func:`csdtex.mesh.seams.seam_edges`), non-manifold edges and duplicate faces; UV coordinates with bit-identical
    values count as the same UV vertex. Overlapping UVs are estimated per material by rasterizing its UV triangles on
    an ``overlap_resolution``² grid of samples in [0, 1]²: the share of covered samples covered by two or more
    triangles is reported when above 1%.

    Args:
        mesh: a mesh; it is validated first (:class:`~csdtex.errors.MeshError` if unusable).
        overlap_resolution: samples per side for the overlap estimate.
    Returns:
        a :class:`MeshReport`; bounding boxes in input coordinates (not normalized).
    """
    validate_mesh(mesh)
    vertices, faces = mesh.vertices, mesh.faces
    problems: list[str] = []
    num_faces = mesh.num_faces

    degenerate = degenerate_faces(vertices, faces)
    if degenerate.any():
        problems.append(f"{int(degenerate.sum())} degenerate (zero-area) faces")

    edges = _WeldedEdges.build(vertices, faces)
    non_manifold = int((edges.counts > 2).sum())
    if non_manifold:
        problems.append(f"{non_manifold} non-manifold edges (shared by more than two faces)")

    flipped = _inconsistently_wound_edges(edges)
    if flipped:
        problems.append(f"{counted(flipped, 'edge')} between faces wound in opposite directions (inconsistent "
                        "winding): smooth normals cancel there and shading looks blotchy in renders and in the "
                        "outputs; make the normals consistent in your 3D tool (Blender: Mesh > Normals > Recalculate "
                        "Outside)")

    face_keys = np.sort(edges.welded[faces], axis=1)
    face_keys = face_keys[~degenerate]
    if len(face_keys):
        duplicates = len(face_keys) - len(np.unique(face_keys, axis=0))
        if duplicates:
            problems.append(f"{duplicates} duplicate faces (same three corners as another face)")

    num_charts = num_seams = None
    seam_stats: dict[str, float | None] = {}
    if mesh.uv_faces is not None:
        uv_faces = mesh.uv_faces
        with_uv = (uv_faces >= 0).all(axis=1)
        cuv = _canonical_uv_faces(mesh)  # bit-identical coordinates are the same UV vertex
        num_charts = _count_charts(cuv, mesh.face_materials, with_uv, len(mesh.uvs))
        seams = _seam_edges(mesh, edges, cuv)
        num_seams = len(seams)
        seam_stats = _seam_statistics(mesh, edges, seams)
        share = seam_stats["density_mismatch_share"]
        if share is not None and share > 0.25:
            problems.append(
                f"texel density differs 2x or more across {100.0 * share:.0f}% of the seam length: mipmapped seams "
                "may show (fine detail on one side only); --unwrap gives every chart the same density"
            )

        missing = int((~with_uv).sum())
        if missing:
            verb = "has" if missing == 1 else "have"
            problems.append(f"{counted(missing, 'face')} {verb} no UVs (csdtex unwraps them into a new material)")
        outside, used = uvs_outside_unit_square(mesh)
        if outside:
            problems.append(f"{outside} of {used} used UV coordinates lie outside [0, 1] (tiled UVs: the texture "
                            "repeats there)")
        tiles = udim_tiles(mesh)
        for material_name, fraction in shared_texel_fractions(mesh, overlap_resolution):
            if fraction > 0.01:
                problems.append(
                    f"material '{material_name}': {100.0 * fraction:.1f}% of its painted texels are shared by more "
                    "than one surface region (overlapping or tiled UVs get the same paint; use --unwrap to re-unwrap)"
                    + (f"; {udim_hint(tiles)}" if tiles else "")
                )
        for material_name, fraction in uv_area_fractions(mesh):
            if fraction == 0.0:
                problems.append(f"material '{material_name}': its UV triangles have no area (every face's UVs are "
                                "one point or lie on a line): nothing can be painted into its texture; --unwrap")
            elif fraction < SMALL_UV_AREA:
                problems.append(f"material '{material_name}': its UVs cover only {100.0 * fraction:.2g}% of the "
                                "texture: a paint holds almost no detail there; check the UV set, or --unwrap")

    problems.extend(f"warning: {w}" for w in mesh.warnings + mesh.output_notes)
    ignored = [name for name, applied in mesh.extensions.items() if not applied]
    if ignored:
        problems.append(f"glTF extension(s) csdtex does not support, ignored: {', '.join(ignored)}")
    return MeshReport(
        num_vertices=mesh.num_vertices,
        num_faces=num_faces,
        has_uvs=mesh.has_uvs,
        num_materials=len(mesh.materials),
        num_charts=num_charts,
        bbox_min=vertices.min(axis=0),
        bbox_max=vertices.max(axis=0),
        num_seam_edges=num_seams,
        problems=problems,
        source=None if mesh.source is None else str(mesh.source),
        extensions=dict(mesh.extensions),
        vertex_colors=mesh.vertex_colors is not None,
        textures=[_texture_summary(material) for material in mesh.materials],
        **seam_stats,
    )


def uvs_outside_unit_square(mesh: Mesh, tolerance: float = 1e-6) -> tuple[int, int]:
    """(UV coordinates outside [0, 1] beyond ``tolerance``, UV coordinates used), counting the UVs of faces that have
    UVs on every corner; (0, 0) for a mesh without UVs."""
    if mesh.uv_faces is None:
        return 0, 0
    used = np.unique(mesh.uv_faces[(mesh.uv_faces >= 0).all(axis=1)])
    outside = ((mesh.uvs[used] < -tolerance) | (mesh.uvs[used] > 1.0 + tolerance)).any(axis=1)
    return int(outside.sum()), len(used)


def _texture_summary(material) -> str:
    """``'<name>: 512x256 texture, wrap repeat/repeat, linear filter, <transform>'`` or the base colour, then the
    maps and cut-out the outputs carry (``'; carried: normal map, metallic-roughness map, alpha MASK'``)."""
    if material.texture is None:
        text = f"{material.name}: no texture (base colour {', '.join(f'{c:.2f}' for c in material.base_color)})"
    else:
        height, width = material.texture.shape[:2]
        text = f"{material.name}: {width}x{height} texture"
        if material.sampler is not None:
            sampler = material.sampler
            text += f", wrap {sampler.wrap_s}/{sampler.wrap_t}, {sampler.mag_filter} filter"
        if material.texture_transform is not None and not material.texture_transform.is_identity:
            text += f", {material.texture_transform.description}"
    carried = [slot.replace("_", "-") + " map" for slot in material.maps]
    if material.has_cutout:
        carried.append(f"alpha {material.alpha_mode}")
    if material.emissive_factor is not None and any(material.emissive_factor) and "emissive" not in material.maps:
        carried.append("emissive colour")
    return text + (f"; carried into the outputs: {', '.join(carried)}" if carried else "")


def shared_texel_fractions(mesh: Mesh, resolution: int = 256) -> list[tuple[str, float]]:
    """Per material with UVs: the share of its painted texels that several surface regions map to.

    UV triangles are first placed into [0, 1]² by the wrap rule a bake uses (:func:`csdtex.sampling.baked_samplers`,
    :func:`csdtex.sampling.wrap_uv_triangles`: tiled UVs land on the texels a viewer reads for them), then
    :func:`uv_overlap_fraction` measures the doubly covered share. Overlapping UVs and UVs in several integer tiles
    both count: those regions necessarily get the same paint.

    Returns:
        ``[(material name, fraction in [0, 1]), ...]`` in material order, for materials that have faces with UVs.
    """
    return [(name, uv_overlap_fraction(placed, resolution)) for name, placed in placed_uv_triangles(mesh)]


def placed_uv_triangles(mesh: Mesh) -> Iterator[tuple[str, np.ndarray]]:
    """Per material with UVs, in material order: (its name, its UV triangles float64 [K, 3, 2] placed into [0, 1]²
    by the wrap rule a bake uses, :func:`csdtex.sampling.baked_samplers` and :func:`csdtex.sampling.wrap_uv_triangles`).
    Nothing for a mesh without UVs."""
    if mesh.uv_faces is None or mesh.uvs is None:
        return
    with_uv = (mesh.uv_faces >= 0).all(axis=1)
    for index, (material, sampler) in enumerate(zip(mesh.materials, baked_samplers(mesh))):
        selected = with_uv & (mesh.face_materials == index)
        if selected.any():
            yield material.name, wrap_uv_triangles(mesh.uvs[mesh.uv_faces[selected]], sampler)[0]


SMALL_UV_AREA = 0.01
"""Share of a texture below which a material's UVs are reported as too small to hold detail (a lightmap-like or
mis-scaled UV set: 1% of a 1024² texture is about 10,000 texels for the whole material)."""


def uv_area_fractions(mesh: Mesh) -> list[tuple[str, float]]:
    """Per material with UVs: the summed area of its UV triangles placed into [0, 1]² by the bake's wrap rule (as
    :func:`shared_texel_fractions`), as a share of the texture, capped at 1 (overlaps count twice).

    Returns:
        ``[(material name, fraction in [0, 1]), ...]`` in material order, for materials that have faces with UVs;
        0.0 exactly when every UV triangle of the material is a point or a line.
    """
    result = []
    for name, placed in placed_uv_triangles(mesh):
        result.append((name, float(min(np.nansum(np.abs(doubled_signed_areas(placed))) / 2.0, 1.0))))
    return result


def doubled_signed_areas(triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of 2D triangles float [K, 3, 2] -> [K] (positive counter-clockwise, 0 for a point or a
    line, NaN where a corner is)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def uv_span_text(mesh: Mesh) -> str:
    """``'UVs span u 0.3..0.3, v 0.3..0.3'`` over the corners of the faces with UVs, or ``'no UVs'`` (messages)."""
    if mesh.uv_faces is None or mesh.uvs is None:
        return "no UVs"
    with_uv = mesh.uv_faces[(mesh.uv_faces >= 0).all(axis=1)]
    if not len(with_uv):
        return "no UVs"
    corners = mesh.uvs[with_uv.reshape(-1)]
    return (f"UVs span u {corners[:, 0].min():.3g}..{corners[:, 0].max():.3g}, v {corners[:, 1].min():.3g}.."
            f"{corners[:, 1].max():.3g}")


def udim_tiles(mesh: Mesh) -> list[int]:
    """The UDIM tile numbers (``1001 + u_tile + 10 * v_tile``) of a mesh whose UV charts sit in several integer tiles
    with u in [0, 10) and v >= 0, each face inside one tile; [] for any other layout (a single tile, repeating UVs
    that cross tile borders, negative UVs)."""
    if mesh.uv_faces is None or mesh.uvs is None:
        return []
    with_uv = (mesh.uv_faces >= 0).all(axis=1)
    if not with_uv.any():
        return []
    corners = mesh.uvs[mesh.uv_faces[with_uv]]  # [F, 3, 2]
    if not np.isfinite(corners).all():
        return []
    corners = corners[doubled_signed_areas(corners) != 0]  # a UV point or line has no tile
    if not len(corners):
        return []
    tile = np.floor(corners.mean(axis=1) + 0.0).astype(np.int64)  # the tile of each face's centroid
    margin = 1e-6
    inside = ((corners >= tile[:, None, :] - margin) & (corners <= tile[:, None, :] + 1 + margin)).all(axis=(1, 2))
    if not inside.all() or (tile < 0).any() or (tile[:, 0] >= 10).any():
        return []
    numbers = np.unique(1001 + tile[:, 0] + 10 * tile[:, 1])
    return [int(n) for n in numbers] if len(numbers) > 1 else []


def udim_hint(tiles: list[int]) -> str:
    """The remedy for UVs in several integer tiles (:func:`udim_tiles`), as a clause to append to the shared-texels
    line: a UDIM layout needs one material per tile, since csdtex paints one image per material."""
    shown = ", ".join(str(t) for t in tiles[:6]) + (", ..." if len(tiles) > 6 else "")
    return (f"the UVs sit in the integer tiles {shown}: if that is a UDIM layout, give each tile its own material "
            "in your 3D tool (its UVs moved into 0..1) so that the tiles are painted apart")


def _inconsistently_wound_edges(edges: _WeldedEdges) -> int:
    """Manifold edges (two faces) that both faces traverse in the same direction: the faces' windings, and so their
    normals, disagree across the edge."""
    two = edges.counts == 2
    first = edges.ids[edges.first[two]]
    second = edges.ids[edges.first[two] + 1]
    return int((edges.starts[first] == edges.starts[second]).sum())


def _seam_statistics(mesh: Mesh, edges: _WeldedEdges, seams) -> dict[str, float | None]:
    """Seam length, its share of all welded edge length, and the length-weighted texel-density ratio across seams
    (UV segment lengths of the two sides, larger over smaller; equal texture sizes assumed)."""
    half = edges.ids[edges.first]
    starts, ends = edges.starts[half], edges.ends[half]
    total = float(np.linalg.norm(mesh.vertices[ends] - mesh.vertices[starts], axis=1).sum())
    length = float(seams.lengths.sum())
    stats: dict[str, float | None] = {"seam_length": length,
                                      "seam_length_fraction": length / total if total > 0 else 0.0,
                                      "density_ratio_median": None, "density_mismatch_share": None}
    if len(seams) and length > 0:
        uv_len = np.linalg.norm(seams.uvs[:, :, 1] - seams.uvs[:, :, 0], axis=-1)  # [S, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nan_to_num(uv_len.max(axis=1) / uv_len.min(axis=1), nan=1.0, posinf=np.inf)
        finite = np.isfinite(ratio)  # a side collapsed to a UV point has no density to compare (its own problem line)
        if finite.any():
            order = np.argsort(ratio[finite])
            lengths = seams.lengths[finite][order]
            cumulative = np.cumsum(lengths) / max(float(lengths.sum()), 1e-300)
            stats["density_ratio_median"] = float(ratio[finite][order][min(np.searchsorted(cumulative, 0.5),
                                                                            len(order) - 1)])
        stats["density_mismatch_share"] = float(seams.lengths[finite & (ratio >= 2.0)].sum() / length)
    return stats


def _count_charts(cuv: np.ndarray, face_materials: np.ndarray, with_uv: np.ndarray, num_uvs: int) -> int:
    """Connected components of faces (with UVs) linked through shared (material, UV vertex) nodes."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    face_ids = np.flatnonzero(with_uv)
    if len(face_ids) == 0:
        return 0
    node = face_materials[face_ids, None] * (num_uvs + 1) + cuv[face_ids]  # [n, 3]
    _, node = np.unique(node.reshape(-1), return_inverse=True)
    n = len(face_ids)
    rows = np.repeat(np.arange(n), 3)
    cols = n + node.reshape(-1)
    size = n + int(node.max()) + 1
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return int(len(np.unique(labels[:n])))


def uv_overlap_fraction(triangles: np.ndarray, resolution: int = 256, max_samples: int = 4_000_000) -> float:
    """Share of the covered UV area that is covered by two or more triangles, estimated on a sample grid.

    Args:
        triangles: float [N, 3, 2] UV triangles (u, v), any orientation; the part outside [0, 1]² is ignored
            (tiled UVs are not wrapped).
        resolution: samples per side; sample (i, j) sits at ((i + 0.5 + du) / r, (j + 0.5 + dv) / r) with small
            irrational-looking offsets du, dv so that samples practically never lie exactly on the (often axis-aligned
            or diagonal) shared edges of neighbouring triangles, which would be counted twice.
        max_samples: work limit (sample-in-triangle tests). When the triangles' bounding boxes hold more samples
            than this (huge total UV area: tiled or garbage UVs), the grid is made coarser (down to 16 per side) and,
            if that is not enough, a random subset of the triangles (fixed seed) is rasterized; such inputs overlap
            heavily, so the estimate stays far above any reporting threshold.
    Returns:
        float in [0, 1]: (#samples covered more than once) / (#samples covered at least once); 0 if none covered.
    """
    tri = np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 2)
    tri = tri[np.isfinite(tri).all(axis=(1, 2))]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    signed = doubled_signed_areas(tri)
    keep = signed != 0
    a, b, c, signed = a[keep], b[keep], c[keep], signed[keep]
    b, c = np.where(signed[:, None] < 0, c, b), np.where(signed[:, None] < 0, b, c)  # counter-clockwise
    offset = np.array([0.5 + 0.0123456789, 0.5 + 0.0298765431])
    tri_lo = np.minimum(np.minimum(a, b), c)
    tri_hi = np.maximum(np.maximum(a, b), c)

    def sample_boxes(r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        i0 = np.clip(np.ceil(tri_lo * r - offset), 0, r).astype(np.int64)
        i1 = np.clip(np.floor(tri_hi * r - offset), -1, r - 1).astype(np.int64)
        nx = np.maximum(i1[:, 0] - i0[:, 0] + 1, 0)
        ny = np.maximum(i1[:, 1] - i0[:, 1] + 1, 0)
        return i0, nx, ny, nx * ny

    r = int(resolution)
    i0, nx, ny, sizes = sample_boxes(r)
    total = int(sizes.sum())
    if total > max_samples and r > 16:
        r = max(16, int(r * np.sqrt(max_samples / total)))
        i0, nx, ny, sizes = sample_boxes(r)
        total = int(sizes.sum())
    chosen = np.flatnonzero(sizes > 0)
    if total > max_samples:
        rng = np.random.default_rng(0)
        chosen = chosen[rng.random(len(chosen)) < max_samples / total]

    counts = np.zeros(r * r, dtype=np.int64)
    cumulative = np.cumsum(sizes[chosen])
    chunk = 1 << 21
    start = 0
    while start < len(chosen):
        base = cumulative[start - 1] if start > 0 else 0
        stop = max(int(np.searchsorted(cumulative, base + chunk, side="right")), start + 1)
        ids = chosen[start:stop]
        n = sizes[ids]
        which = np.repeat(np.arange(len(ids)), n)
        local = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        t = ids[which]
        ix = i0[t, 0] + local % nx[t]
        iy = i0[t, 1] + local // nx[t]
        px = (ix + offset[0]) / r
        py = (iy + offset[1]) / r
        inside = np.ones(len(t), dtype=bool)
        for p, q in ((a, b), (b, c), (c, a)):
            inside &= (q[t, 0] - p[t, 0]) * (py - p[t, 1]) - (q[t, 1] - p[t, 1]) * (px - p[t, 0]) >= 0
        counts += np.bincount(iy[inside] * r + ix[inside], minlength=r * r)
        start = stop
    covered = int((counts > 0).sum())
    return float((counts > 1).sum()) / covered if covered else 0.0
