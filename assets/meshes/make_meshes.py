"""Regenerate the procedural meshes shipped in assets/meshes (deterministic; run from anywhere).

- vase.obj: a surface of revolution, 4.6k triangles, with a cylindrical UV layout (one seam) and a separate cap.
- knot.obj: a (2, 3) torus knot tube, 7.7k triangles, *without* UVs (csdtex unwraps it with xatlas).
- crate.obj: a box, 3 x 3 quads per side (OBJ quads), with per-face UV islands.
- duck.obj: a toy duck made of three overlapping ellipsoids (body, head, beak), 3.8k triangles, *without* UVs; an
  organic shape unlike the synthetic training primitives, used by the fidelity benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def write_obj(path: Path, vertices, faces, uvs=None, uv_faces=None, comment: str = "") -> None:
    lines = [f"# {comment}"] if comment else []
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    if uvs is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
    for index, face in enumerate(faces):
        if uv_faces is not None:
            lines.append("f " + " ".join(f"{a + 1}/{b + 1}" for a, b in zip(face, uv_faces[index])))
        else:
            lines.append("f " + " ".join(str(a + 1) for a in face))
    path.write_text("\n".join(lines) + "\n")


def vase(rings: int = 48, segments: int = 48):
    height = np.linspace(0.0, 1.0, rings)
    radius = 0.28 + 0.18 * np.sin(np.pi * height * 1.3 + 0.3) + 0.06 * np.cos(6 * np.pi * height)
    angle = 2 * np.pi * np.arange(segments + 1) / segments  # last column duplicates the first in UV only
    vertices, uvs = [], []
    for i in range(rings):
        for j in range(segments):
            vertices.append((radius[i] * np.cos(angle[j]), height[i] - 0.5, radius[i] * np.sin(angle[j])))
    for i in range(rings):
        for j in range(segments + 1):
            uvs.append((0.02 + 0.96 * j / segments, 0.22 + 0.76 * i / (rings - 1)))
    faces, uv_faces = [], []
    for i in range(rings - 1):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = (i + 1) * segments + (j + 1) % segments, (i + 1) * segments + j
            ua, ub = i * (segments + 1) + j, i * (segments + 1) + j + 1
            uc, ud = (i + 1) * (segments + 1) + j + 1, (i + 1) * (segments + 1) + j
            faces += [(a, d, c), (a, c, b)]
            uv_faces += [(ua, ud, uc), (ua, uc, ub)]
    # Bottom cap: a fan around a centre vertex, its own UV island (a disc in the lower part of the atlas).
    centre = len(vertices)
    vertices.append((0.0, -0.5, 0.0))
    cap_uv_start = len(uvs)
    for j in range(segments):
        uvs.append((0.5 + 0.09 * np.cos(angle[j]), 0.1 + 0.09 * np.sin(angle[j])))
    uvs.append((0.5, 0.1))
    for j in range(segments):
        faces.append((centre, j, (j + 1) % segments))
        uv_faces.append((cap_uv_start + segments, cap_uv_start + j, cap_uv_start + (j + 1) % segments))
    return np.array(vertices), np.array(faces), np.array(uvs), np.array(uv_faces)


def torus_knot(p: int = 2, q: int = 3, samples: int = 320, sides: int = 12, tube: float = 0.12):
    t = 2 * np.pi * np.arange(samples) / samples

    def curve(s):
        r = 0.5 + 0.25 * np.cos(q * s)
        return np.stack([r * np.cos(p * s), 0.25 * np.sin(q * s), r * np.sin(p * s)], -1)

    centre = curve(t)
    tangent = np.gradient(np.concatenate([centre[-1:], centre, centre[:1]]), axis=0)[1:-1]
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.cross(tangent, [0.0, 1.0, 0.0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    phi = 2 * np.pi * np.arange(sides) / sides
    ring = tube * (np.cos(phi)[None, :, None] * normal[:, None] + np.sin(phi)[None, :, None] * binormal[:, None])
    vertices = (centre[:, None] + ring).reshape(-1, 3)
    faces = []
    for i in range(samples):
        for j in range(sides):
            a, b = i * sides + j, i * sides + (j + 1) % sides
            c, d = ((i + 1) % samples) * sides + (j + 1) % sides, ((i + 1) % samples) * sides + j
            faces += [(a, b, c), (a, c, d)]
    return vertices, np.array(faces)


def crate(cells: int = 3, size: float = 0.8):
    """A box whose six sides are grids of quads; each side is its own UV island in a 3 x 2 atlas."""
    vertices, faces, uvs, uv_faces = [], [], [], []
    half = size / 2
    axes = [((0, 1, 2), 1), ((0, 1, 2), -1), ((2, 1, 0), 1), ((2, 1, 0), -1), ((0, 2, 1), 1), ((0, 2, 1), -1)]
    for side, ((u_axis, v_axis, n_axis), sign) in enumerate(axes):
        base = len(vertices)
        island_u, island_v = (side % 3) / 3.0, (side // 3) / 2.0
        for i in range(cells + 1):
            for j in range(cells + 1):
                point = [0.0, 0.0, 0.0]
                point[u_axis] = (-half + size * j / cells) * sign
                point[v_axis] = -half + size * i / cells
                point[n_axis] = half * sign
                vertices.append(tuple(point))
                uvs.append((island_u + 0.02 + 0.293 * j / cells, island_v + 0.03 + 0.44 * i / cells))
        for i in range(cells):
            for j in range(cells):
                a = base + i * (cells + 1) + j
                quad = (a, a + 1, a + cells + 2, a + cells + 1)
                if n_axis == 1:
                    quad = quad[::-1]
                faces.append(quad)
                uv_faces.append(quad)
    return np.array(vertices), faces, np.array(uvs), uv_faces


def duck():
    """Body, head and beak ellipsoids (icospheres, subdivision 3), overlapping but not merged; facing +X."""
    import trimesh

    parts = []
    for centre, radii in (((0.0, -0.12, 0.0), (0.55, 0.36, 0.40)), ((0.34, 0.34, 0.0), (0.24, 0.24, 0.24)),
                          ((0.60, 0.30, 0.0), (0.14, 0.05, 0.10))):
        sphere = trimesh.creation.icosphere(subdivisions=3)
        parts.append((sphere.vertices * np.array(radii) + np.array(centre), sphere.faces))
    vertices, faces, offset = [], [], 0
    for part_vertices, part_faces in parts:
        vertices.append(part_vertices)
        faces.append(part_faces + offset)
        offset += len(part_vertices)
    return np.concatenate(vertices), np.concatenate(faces)


if __name__ == "__main__":
    write_obj(HERE / "vase.obj", *vase(), comment="csdtex procedural vase (with UVs)")
    write_obj(HERE / "knot.obj", *torus_knot(), comment="csdtex procedural torus knot (no UVs)")
    write_obj(HERE / "crate.obj", *crate(), comment="csdtex procedural crate (quads, per-side UV islands)")
    write_obj(HERE / "duck.obj", *duck(), comment="csdtex procedural toy duck (three ellipsoids, no UVs)")
    print("wrote vase.obj, knot.obj, crate.obj, duck.obj")
