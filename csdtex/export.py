"""Export a textured mesh: Wavefront OBJ + MTL + PNG, and binary glTF 2.0 (GLB).

This module joins the formats: file names, PNG encoding, input checks and the all-or-nothing writing of several
files. The format writers themselves are :mod:`csdtex.io.obj` (OBJ / MTL text) and :mod:`csdtex.io.gltf` (GLB bytes).

Conventions
-----------
- Geometry is written exactly as the :class:`~csdtex.mesh.Mesh` holds it: the input's vertices, faces and UVs, never
  the normalized render copy. OBJ keeps float64 bit-exact (shortest round-trip ``repr`` of every float); glTF stores
  positions as float32 (the format has no float64 vertex attributes), so coordinates lose precision beyond ~7
  significant digits, which matters only for meshes far from the origin (e.g. georeferenced scans).
- UV (0, 0) is the bottom-left of the image, as in ``Mesh`` and OBJ. glTF puts (0, 0) at the top-left, so the GLB
  stores ``v_gltf = 1 - v``. Texture images are uint8 [H, W, 3] RGB (sRGB), row 0 = top of the image = v 1, in
  both formats.
- One texture per material (``textures[i]`` belongs to ``mesh.materials[i]``).
- Output file names come from :func:`safe_asset_name` (readable in any script: ``模型.glb``), so names taken from asset or mesh names can never point
  outside the output folder (:func:`output_path` checks this once more after resolving symbolic links).
- Every file is written atomically (temporary file + rename, see :mod:`csdtex.fileio`). A multi-file export first
  writes all temporary files and renames them into place only when every one was written, so a failure while
  encoding or writing leaves neither new outputs nor temporary files behind (and older outputs untouched).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from csdtex.errors import ConfigError, MeshError
from csdtex.fileio import atomic_path, is_within, write_bytes_atomic
from csdtex.io.gltf import glb_bytes
from csdtex.io.obj import mtl_map_options, mtl_text, mtl_texture_options, obj_text
from csdtex.mesh.types import Material, Mesh, unique_name
from csdtex.sampling import TextureSampler, TextureTransform

__all__ = [
    "ExportedFiles",
    "MAX_NAME_BYTES",
    "MAX_NAME_LENGTH",
    "export_all",
    "export_glb",
    "export_obj",
    "output_path",
    "safe_asset_name",
    "save_texture_png",
]

MAX_NAME_LENGTH = 96
"""Longest file stem :func:`safe_asset_name` returns (leaves room for suffixes and temporary-file decorations
within the usual 255-byte file name limit)."""

# ----------------------------------------------------------------------------------------------------------------------
# Names and paths
# ----------------------------------------------------------------------------------------------------------------------

_SAFE_SUFFIX = re.compile(r"^[A-Za-z0-9._-]*$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


MAX_NAME_BYTES = 192
"""Longest UTF-8 encoding of a file stem :func:`safe_asset_name` returns (file systems limit a name to 255 bytes;
the rest is room for suffixes and temporary-file decorations)."""


def _unicode_file_names() -> bool:
    """True when this platform stores file names as Unicode (UTF-8 on POSIX, UTF-16 on Windows)."""
    return sys.getfilesystemencoding().lower().replace("-", "").replace("_", "") in ("utf8", "mbcs")


def _allowed(ch: str, keep_unicode: bool) -> bool:
    if ch.isascii():
        return ch.isalnum() or ch in "-_."
    # Letters, digits and combining marks of any script (marks carry vowels in Devanagari, Thai, ...); never
    # symbols, punctuation, spaces, controls, format characters (bidi overrides, zero-width joiners) or surrogates.
    return keep_unicode and unicodedata.category(ch)[0] in "LNM"


def safe_asset_name(name: str) -> str:
    """Turn an asset or mesh name into a safe, portable, readable file stem.

    The result contains only letters, digits and combining marks (of any script, see below), ``-``, ``_`` and ``.``;
    it has no path separators, does not start with ``.``, ``-`` or a combining mark (no hidden files, nothing that
    looks like a command-line option), does not end with ``.``, is not a reserved Windows device name, is never
    empty, is at most :data:`MAX_NAME_LENGTH` characters and :data:`MAX_NAME_BYTES` UTF-8 bytes long, and is in
    Unicode normal form NFC (macOS and Linux then agree on it). The function is idempotent
    (``safe_asset_name(safe_asset_name(x)) == safe_asset_name(x)``).

    Rules, in order:
      - path components ``.``, ``..`` and empty ones are dropped; the remaining components are joined with ``_``
        (``'../../etc/passwd'`` -> ``'etc_passwd'``, ``'a/b\\c'`` -> ``'a_b_c'``);
      - where the file system stores names as Unicode (UTF-8 / UTF-16: every current desktop and server platform),
        names in any script stay readable: ``'模型'`` -> ``'模型'``, ``'café crème'`` -> ``'café_crème'``,
        ``'модель 2'`` -> ``'модель_2'``; symbols and emoji are not letters and become ``_``. On a platform without
        Unicode file names, accents are transliterated (``'café'`` -> ``'cafe'``) and other characters dropped;
      - every run of disallowed characters becomes one ``_`` (runs at either end are dropped);
      - a name left without any letter or digit becomes ``'asset'`` (for an empty input) or ``'asset_<hash>'``
        (a hash of the original, so that distinct names stay distinct: ``'🙂'`` -> ``'asset_1a2b3c4d'``);
      - a name longer than :data:`MAX_NAME_LENGTH` characters or :data:`MAX_NAME_BYTES` bytes is cut and ends with
        ``_<hash>`` of the full original.

    Args:
        name: any string (None is treated as empty).
    Returns:
        the file stem, without a suffix.
    """
    original = "" if name is None else str(name)
    keep_unicode = _unicode_file_names()
    parts = [p for p in re.split(r"[\\/]+", original) if p not in ("", ".", "..")]
    text = "\0".join(parts)  # separators become "_" below, merged with neighbouring disallowed characters
    if keep_unicode:
        text = unicodedata.normalize("NFC", text)
    else:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = "".join(ch if _allowed(ch, keep_unicode) else "\0" for ch in text)
    text = re.sub("\0+", "\0", text).strip("\0").replace("\0", "_")
    while text and (text[0] in ".-" or unicodedata.category(text[0])[0] == "M"):
        text = text[1:]
    text = text.rstrip(".")
    if not any(ch.isalnum() for ch in text):
        return "asset" if not original.strip() else f"asset_{_short_hash(original)}"
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    if len(text) > MAX_NAME_LENGTH or len(text.encode("utf-8")) > MAX_NAME_BYTES:
        cut = text[: MAX_NAME_LENGTH - 9]
        while len(cut.encode("utf-8")) > MAX_NAME_BYTES - 9:
            cut = cut[:-1]
        text = cut.rstrip(".") + "_" + _short_hash(original)
    return text


def output_path(out_dir: str | os.PathLike, name: str, suffix: str) -> Path:
    """``out_dir / (safe_asset_name(name) + suffix)``, guaranteed to stay inside ``out_dir``.

    Args:
        out_dir: the output folder (need not exist yet).
        name: an asset or mesh name; passed through :func:`safe_asset_name`.
        suffix: the file suffix including its dot, e.g. ``'.obj'`` or ``'_albedo.png'``; only ASCII letters, digits,
            ``.``, ``_`` and ``-`` are allowed.
    Returns:
        the path (not resolved).
    Raises:
        ConfigError: the suffix has other characters, or the path resolves outside ``out_dir`` (for instance because
            a file of that name inside ``out_dir`` is a symbolic link to somewhere else).
    """
    if not _SAFE_SUFFIX.match(suffix):
        raise ConfigError(f"invalid output file suffix {suffix!r}: use only letters, digits, '.', '_' and '-'")
    path = Path(out_dir) / (safe_asset_name(name) + suffix)
    if not is_within(path, out_dir):
        raise ConfigError(
            f"output file {str(path)!r} would resolve outside the output folder {str(out_dir)!r} "
            "(is it a symbolic link?); remove it or choose another output folder"
        )
    return path


@dataclass
class ExportedFiles:
    """Paths written by an export (None / empty for formats that were not written).

    Attributes:
        obj: the ``.obj`` file.
        mtl: the ``.mtl`` file the OBJ references.
        textures: one PNG per material, in material order.
        glb: the ``.glb`` file.
        maps: the carried maps the MTL names (normal, emissive, roughness and metallic PNGs; see
            :func:`export_obj`), in material order.
        notes: what a written format could not state, one line each (an MTL has no mirrored repeat, say); empty for
            painted outputs, whose textures are baked to need nothing of the kind.
    """

    obj: Path | None = None
    mtl: Path | None = None
    textures: list[Path] = field(default_factory=list)
    glb: Path | None = None
    maps: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def paths(self) -> list[Path]:
        """Every written path: obj, mtl, textures, glb, maps (those that exist in this export)."""
        return [p for p in (self.obj, self.mtl, *self.textures, self.glb, *self.maps) if p is not None]


# ----------------------------------------------------------------------------------------------------------------------
# Textures
# ----------------------------------------------------------------------------------------------------------------------


def _as_texture_u8(image, what: str = "texture") -> np.ndarray:
    """Validate an image and return it as C-contiguous uint8 [H, W, 3] (alpha dropped, floats rounded)."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ConfigError(f"{what} must be an RGB image array [H, W, 3] (or [H, W, 4]); got shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ConfigError(f"{what} contains NaN or infinite values; expected colors in [0, 1]")
        return np.ascontiguousarray(np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))
    raise ConfigError(f"{what} must be uint8 in [0, 255] or float in [0, 1]; got dtype {array.dtype}")


def _png_bytes(image_u8: np.ndarray, alpha: np.ndarray | None = None) -> bytes:
    """Encode uint8 [H, W, 3] as an 8-bit RGB PNG tagged sRGB (rendering intent perceptual); with ``alpha`` (uint8
    [H, W]) as RGBA."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add(b"sRGB", b"\x00")
    buffer = io.BytesIO()
    pixels = image_u8 if alpha is None else np.concatenate([image_u8, alpha[:, :, None]], axis=2)
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def export_alpha(material: Material, height: int, width: int, raw_uv_space: bool = False) -> np.ndarray | None:
    """The alpha an exported texture of ``material`` carries: its input alpha (:attr:`Material.alpha`, MASK or
    BLEND) resized to ``height`` x ``width`` (nearest for MASK, so a cut-out keeps hard edges; bilinear for BLEND), or
    None for an opaque material. uint8 [height, width].

    ``raw_uv_space``: the exported texture lives in the mesh's raw UV space (a paint's bake) while the input read its
    alpha through a texture transform: the alpha is then looked up through that transform and the input's wrap modes
    at every output texel's UV, so the cut-out keeps the shape viewers showed."""
    if not material.has_cutout:
        return None
    alpha = np.asarray(material.alpha, dtype=np.uint8)
    transform = material.texture_transform
    if raw_uv_space and transform is not None and not transform.is_identity:
        import torch

        from csdtex.sampling import TextureSampler, sample_texture

        source = material.sampler or TextureSampler()
        filtering = "nearest" if material.alpha_mode == "MASK" else "linear"
        sampler = TextureSampler(source.wrap_s, source.wrap_t, filtering, source.min_filter)
        rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        uvs = np.stack([(cols + 0.5) / width, 1.0 - (rows + 0.5) / height], axis=-1).reshape(-1, 2)
        values = sample_texture(torch.as_tensor(alpha, dtype=torch.float32)[None], torch.as_tensor(uvs), sampler,
                                transform)
        return np.clip(np.rint(values.numpy().reshape(height, width)), 0, 255).astype(np.uint8)
    if alpha.shape == (height, width):
        return alpha
    from PIL import Image

    resample = Image.Resampling.NEAREST if material.alpha_mode == "MASK" else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(alpha).resize((width, height), resample), dtype=np.uint8)


def _coverage_png(alpha: np.ndarray) -> bytes:
    """A ``map_d`` PNG: grey-and-alpha (LA) with both bands the coverage uint8 [H, W], so a reader that takes the
    grey (or green) band and one that takes the alpha band get the same cut-out."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.stack([alpha, alpha], axis=-1), "LA").save(buffer, format="PNG")
    return buffer.getvalue()


def save_texture_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a texture as an 8-bit sRGB PNG, atomically.

    Args:
        path: destination file (its folder is created if needed).
        image: uint8 [H, W, 3] RGB, row 0 = top of the image (= v 1 in UV space); [H, W, 4] has its alpha dropped;
            float arrays are taken as colors in [0, 1] (clipped) and rounded to the nearest 8-bit value.
    Returns:
        ``Path(path)``.
    Raises:
        ConfigError: wrong shape, dtype, or non-finite float values.
    """
    return write_bytes_atomic(path, _png_bytes(_as_texture_u8(image)))


# ----------------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------------


def _check_inputs(mesh: Mesh, textures: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate mesh + textures for export; return the textures as uint8 [H, W, 3]."""
    if not mesh.has_uvs:
        raise ConfigError(
            "the mesh has no UVs (or some faces have none); unwrap it first (UV-unwrap in csdtex.mesh) before exporting"
        )
    n_materials = len(mesh.materials)
    if n_materials < 1:
        raise MeshError("the mesh has no materials; a textured export needs at least one")
    if isinstance(textures, np.ndarray) and textures.ndim == 3:
        textures = [textures]
    textures = list(textures)
    if len(textures) != n_materials:
        raise ConfigError(
            f"got {len(textures)} texture(s) for a mesh with {n_materials} material(s); pass one texture per material"
        )
    checked = [
        _as_texture_u8(texture, f"texture {i} (material {material.name!r})")
        for i, (texture, material) in enumerate(zip(textures, mesh.materials))
    ]

    v, f, uv, uvf, fm = mesh.vertices, mesh.faces, mesh.uvs, mesh.uv_faces, mesh.face_materials
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise MeshError(f"the mesh needs at least one triangle to export; faces have shape {f.shape}")
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise MeshError("mesh vertices must be finite float [V, 3]; repair the mesh (NaN/inf coordinates?)")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshError(f"mesh faces index vertices out of range [0, {len(v)}); the mesh is corrupt")
    if uv.ndim != 2 or uv.shape[1] != 2 or not np.isfinite(uv).all():
        raise MeshError("mesh UVs must be finite float [T, 2]; repair the mesh (NaN/inf texture coordinates?)")
    if uvf.shape != f.shape or uvf.max() >= len(uv):
        raise MeshError(f"mesh uv_faces must be [F, 3] indexing {len(uv)} UVs; the mesh is corrupt")
    if fm.shape != (len(f),) or fm.min() < 0 or fm.max() >= n_materials:
        raise MeshError(f"mesh face_materials must be [F] with values in [0, {n_materials}); the mesh is corrupt")
    return checked


_PREVIEW_LABELS = ("views", "before_after")
"""Material labels whose texture name ``<stem>_<label>.png`` is a preview's (``csdtex.pipeline.outputs``): such a
texture is written as ``<stem>_<label>_texture.png``."""


def _material_labels(materials: Sequence[Material]) -> list[str]:
    """Unique (case-insensitively) file-safe labels for materials: MTL ``newmtl`` names and texture file suffixes."""
    labels: list[str] = []
    used: set[str] = set()
    for index, material in enumerate(materials):
        base = safe_asset_name(material.name) if (material.name or "").strip() else f"material_{index}"
        label, k = base, index
        while label.lower() in used:
            label = f"{base}_{k}"
            k += 1
        used.add(label.lower())
        labels.append(label)
    return labels


# ----------------------------------------------------------------------------------------------------------------------
# GLB file (content from csdtex.io.gltf.glb_bytes)
# ----------------------------------------------------------------------------------------------------------------------


def export_glb(mesh: Mesh, textures: Sequence[np.ndarray], path: str | os.PathLike) -> Path:
    """Write ``mesh`` with its textures as one binary glTF 2.0 file (atomically).

    Layout (written by :func:`csdtex.io.gltf.glb_bytes`): one scene, one node (no transform), one mesh named after the
    file stem, one triangle primitive per material that has faces. glTF wants one index per vertex, so vertices are
    split at UV seams and normal creases (:func:`csdtex.io.gltf.split_corners`, one vertex per distinct (vertex, uv,
    normal) combination, per primitive); faces keep their input order within a material. Attributes:

    - ``POSITION``: float32 VEC3 with exact min/max. glTF has no float64 positions, so coordinates are rounded to
      float32 (relative error ~6e-8; absolute error grows with the distance from the origin).
    - ``NORMAL``: float32 VEC3: the input's own normals where it has them (:attr:`csdtex.mesh.Mesh.normals`),
      else smooth area-weighted normals over the original vertices (:func:`csdtex.mesh.vertex_normals`).
    - ``TEXCOORD_0``: float32 VEC2 ``(u, 1 - v)`` (glTF's origin is the top-left of the image).
    - indices: uint16 when the primitive has fewer than 65535 vertices, else uint32.

    Each material is PBR metallic-roughness with ``baseColorTexture`` -> texture -> image embedded in the buffer as PNG
    (``image/png``, the same bytes as :func:`save_texture_png` writes), metallicFactor 0, roughnessFactor 0.9,
    double-sided. Samplers: LINEAR mag filter, LINEAR_MIPMAP_LINEAR min filter; per axis, wrap CLAMP_TO_EDGE when the
    material's UVs lie in [0, 1] (baked atlases; REPEAT would bleed the opposite edge into border charts), else the
    input material's wrap mode (REPEAT by default): :func:`csdtex.sampling.baked_sampler`, the rule
    :func:`csdtex.bake.bake_texture` places charts by. ``KHR_texture_transform`` is never written (baked textures
    live in raw UV space). Chunks and bufferViews are 4-byte aligned;
    ``asset.generator`` is ``'csdtex'``.

    Args:
        mesh: a mesh with UVs on every face (``mesh.has_uvs``).
        textures: one image per material (uint8 [H, W, 3] RGB, row 0 = top = v 1; [H, W, 4] drops alpha; float in
            [0, 1] is rounded to 8 bits).
        path: destination ``.glb`` file (folder created if needed; used as given, not sanitized).
    Returns:
        ``Path(path)``.
    Raises:
        ConfigError: the mesh has no UVs, or the textures do not match the materials.
        MeshError: the mesh arrays are inconsistent (indices out of range, non-finite values, no faces).
    """
    checked = _check_inputs(mesh, textures)
    path = Path(path)
    pngs = [_png_bytes(texture, export_alpha(material, *texture.shape[:2], raw_uv_space=True))
            for material, texture in zip(mesh.materials, checked)]
    return write_bytes_atomic(path, glb_bytes(mesh, pngs, path.stem))


# ----------------------------------------------------------------------------------------------------------------------
# Multi-file exports (content from csdtex.io.obj and csdtex.io.gltf)
# ----------------------------------------------------------------------------------------------------------------------


def _unique_png_name(stem: str, what: str, taken: set[str]) -> str:
    """``<stem>_<what>.png`` made file-safe and unique (case-insensitively) against ``taken`` (lowercase stems of the
    files already named), which gains it."""
    chosen = safe_asset_name(unique_name(safe_asset_name(f"{stem}_{what}"), taken, ignore_case=True))
    taken.add(chosen.lower())
    return chosen + ".png"


def _obj_maps(mesh: Mesh, stems: Sequence[str], taken: set[str]) -> list[tuple[list[str], list[tuple[str, bytes]]]]:
    """Per material: the MTL lines and the (file name, PNG bytes) files of its carried maps and factors
    (:attr:`Material.maps`, ``metallic_factor``, ...) for the OBJ output. ``stems`` are the materials' texture stems
    (``<name>`` or ``<name>_<label>``); map files are ``<stem>_normal.png``, ``_emissive.png``, ``_roughness.png``
    and ``_metallic.png`` (the green and blue channels of a glTF metallic-roughness map), made unique against
    ``taken`` (lowercase file names already used), which is updated; a map several materials share is written once
    (named after the first). MTL has no occlusion key: the GLB carries it."""
    from PIL import Image

    def png_of(data: bytes, channel: int | None = None) -> bytes:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and channel is None:
            return data  # the input's own file, 16-bit normal maps included
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            if channel is not None:
                image = image.getchannel(channel)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
        return buffer.getvalue()

    written: dict[tuple[bytes, str], str] = {}  # (input image, what) -> its file: a map shared by materials once

    def map_file(files: list[tuple[str, bytes]], stem: str, image: bytes, what: str, channel: int | None = None):
        if (image, what) not in written:
            written[image, what] = _unique_png_name(stem, what, taken)
            files.append((written[image, what], png_of(image, channel)))
        return written[image, what]

    result = []
    for material, stem in zip(mesh.materials, stems):
        lines: list[str] = []
        files: list[tuple[str, bytes]] = []
        if material.roughness_factor is not None:
            lines.append(f"Pr {material.roughness_factor:.6f}")
        if material.metallic_factor is not None:
            lines.append(f"Pm {material.metallic_factor:.6f}")
        emissive = material.emissive_factor
        if emissive is None and "emissive" in material.maps:
            emissive = (1.0, 1.0, 1.0)  # an OBJ's map_Ke without Ke
        glows = emissive is not None and any(emissive)  # a glTF emissive map under a black factor shows nothing
        if glows:
            k = 1.0 if material.emissive_strength is None else material.emissive_strength  # MTL's Ke is unbounded
            lines.append(f"Ke {emissive[0] * k:.6f} {emissive[1] * k:.6f} {emissive[2] * k:.6f}")
        for slot, carried in material.maps.items():
            options = mtl_map_options(carried.transform)
            if slot == "normal":
                strength = f"-bm {carried.strength:g} " if carried.strength != 1.0 else ""
                lines.append(f"map_Bump {strength}{options}{map_file(files, stem, carried.image, 'normal')}")
            elif slot == "emissive" and glows:
                lines.append(f"map_Ke {options}{map_file(files, stem, carried.image, 'emissive')}")
            elif slot == "metallic_roughness":
                lines.append(f"map_Pr {options}{map_file(files, stem, carried.image, 'roughness', channel=1)}")
                lines.append(f"map_Pm {options}{map_file(files, stem, carried.image, 'metallic', channel=2)}")
        result.append((lines, files))
    return result


def _export(mesh: Mesh, textures: Sequence[np.ndarray], out_dir, name: str, obj: bool, glb: bool,
            samplers: Sequence[TextureSampler] | None = None,
            transforms: Sequence[TextureTransform | None] | None = None) -> ExportedFiles:
    checked = _check_inputs(mesh, textures)
    stem = safe_asset_name(name)
    labels = _material_labels(mesh.materials)
    result = ExportedFiles()
    # Paths first (all checks before any file is touched).
    if obj:
        result.obj = output_path(out_dir, stem, ".obj")
        result.mtl = output_path(out_dir, stem, ".mtl")
        if len(labels) == 1:
            result.textures = [output_path(out_dir, stem, ".png")]
        else:  # a material named "views" must not write <stem>_views.png, the preview sheet's name
            result.textures = [output_path(out_dir, f"{stem}_{label}" + ("_texture" if label.lower() in
                                                                          _PREVIEW_LABELS else ""), ".png")
                               for label in labels]
    if glb:
        result.glb = output_path(out_dir, stem, ".glb")
    obj_maps: list[tuple[list[str], list[tuple[str, bytes]]]] = []
    if obj:
        taken = {Path(p.name).stem.lower() for p in result.textures}
        obj_maps = _obj_maps(mesh, [p.stem for p in result.textures], taken)
        result.maps = [output_path(out_dir, Path(file).stem, ".png") for _, files in obj_maps for file, _ in files]
        # map_d gets its own grey-and-alpha PNG (grey = alpha = coverage): three.js reads an alpha map's green
        # channel, other importers its alpha; the colour PNG's own alpha serves the GLB
        alpha_files = [_unique_png_name(path.stem, "alpha", taken) if material.has_cutout else None
                       for material, path in zip(mesh.materials, result.textures)]
        result.maps += [output_path(out_dir, Path(name).stem, ".png") for name in alpha_files if name]

    # Stage every file as a temporary file; all are renamed into place only after the last one was written, and all
    # temporaries are removed if anything fails (see csdtex.fileio.atomic_path).
    png_cache: dict[int, bytes] = {}
    alpha_cache: dict[int, np.ndarray | None] = {}

    def alpha(index: int) -> np.ndarray | None:  # the colour PNG's alpha and the MTL's map_d: computed once
        if index not in alpha_cache:
            alpha_cache[index] = export_alpha(mesh.materials[index], *checked[index].shape[:2],
                                              raw_uv_space=transforms is None)
        return alpha_cache[index]

    def png(index: int) -> bytes:
        if index not in png_cache:
            png_cache[index] = _png_bytes(checked[index], alpha(index))
        return png_cache[index]

    with contextlib.ExitStack() as stack:
        stage: Callable[[Path], Path] = lambda destination: stack.enter_context(atomic_path(destination))
        if obj:
            texture_names = [p.name for p in result.textures]
            stage(result.obj).write_text(obj_text(mesh, stem, result.mtl.name, labels), encoding="utf-8")
            options: list[str] = []
            if samplers is not None or transforms is not None:  # textures in the input's image space (an edit)
                for index, label in enumerate(labels):
                    written, lost = mtl_texture_options(samplers[index] if samplers is not None else None,
                                                        transforms[index] if transforms is not None else None)
                    options.append(written)
                    if lost and (mesh.face_materials == index).any():
                        result.notes.append(f"{result.mtl.name}: material '{label}' uses {' and '.join(lost)}, "
                                            "which MTL cannot state: OBJ viewers show it otherwise (the GLB keeps it)")
            stage(result.mtl).write_text(mtl_text(labels, texture_names, alpha_files,
                                                  [lines for lines, _ in obj_maps], options), encoding="utf-8")
            for index, texture_path in enumerate(result.textures):
                data = png(index)
                stage(texture_path).write_bytes(data)
            alpha_data = [_coverage_png(alpha(index)) for index, name in enumerate(alpha_files) if name]
            for path, data in zip(result.maps, [data for _, files in obj_maps for _, data in files] + alpha_data):
                stage(path).write_bytes(data)
        if glb:
            data = glb_bytes(mesh, [png(i) for i in range(len(checked))], stem, samplers, transforms)
            stage(result.glb).write_bytes(data)
    return result


def export_obj(mesh: Mesh, textures: Sequence[np.ndarray], out_dir: str | os.PathLike, name: str) -> ExportedFiles:
    """Write ``<name>.obj``, ``<name>.mtl`` and one PNG per material into ``out_dir``, all or nothing.

    ``name`` goes through :func:`safe_asset_name`. Textures are ``<name>.png`` for a single material, else
    ``<name>_<label>.png`` where ``label`` is the material's name made file-safe (``material_<i>`` when it has none;
    a ``_<i>`` suffix resolves collisions); the same labels are the MTL ``newmtl`` / OBJ ``usemtl`` names.

    OBJ content: ``mtllib``, ``o <name>``, then every vertex as ``v x y z`` in input order with the shortest
    float64 round-trip representation (bit-exact on reading back), every UV as ``vt u v`` in input order (UV (0, 0) =
    bottom-left, OBJ's own convention, so written unchanged), then faces grouped by material (materials in index
    order, a ``usemtl`` line per non-empty group, faces in their original relative order; with one material the face
    order is exactly the input's) as 1-based ``f v/vt v/vt v/vt``; a mesh with its own normals
    (:attr:`csdtex.mesh.Mesh.normals`) also gets ``vn`` lines and ``f v/vt/vn`` corners (others get none: importers
    compute them). MTL content per material: ``Ka 1 1 1``, ``Kd 1 1 1`` (so the texture shows unmodulated),
    ``Ks 0 0 0``, ``Ns 10``, ``d 1``, ``illum 1`` and ``map_Kd`` with the PNG's file name (relative, same folder),
    plus ``map_d`` (the same RGBA PNG) for a material with an alpha cut-out. The input's carried maps and factors
    (:attr:`csdtex.mesh.Material.maps`, glTF inputs) follow in the MTL's PBR keys: ``Pr`` / ``Pm`` (roughness and
    metallic factors), ``Ke`` (emissive factor), ``map_Bump [-bm scale] <stem>_normal.png`` (the normal map, the
    input's PNG bytes, else re-encoded as PNG), ``map_Ke <stem>_emissive.png``, and ``map_Pr`` / ``map_Pm`` with
    ``<stem>_roughness.png`` / ``<stem>_metallic.png`` (the green / blue channel of the metallic-roughness map). MTL
    has no occlusion map key; the GLB carries every map (:func:`export_glb`).

    Args:
        mesh: a mesh with UVs on every face (``mesh.has_uvs``); its vertices, UVs and faces are written unchanged.
        textures: one image per material, see :func:`save_texture_png` for accepted arrays.
        out_dir: output folder (created if needed).
        name: asset name for the file stems.
    Returns:
        :class:`ExportedFiles` with ``obj``, ``mtl`` and ``textures`` set (``glb`` None).
    Raises:
        ConfigError: the mesh has no UVs (unwrap first), textures do not match the materials, or a path would
            leave ``out_dir``.
        MeshError: the mesh arrays are inconsistent.
    """
    return _export(mesh, textures, out_dir, name, obj=True, glb=False)


def export_all(mesh: Mesh, textures: Sequence[np.ndarray], out_dir: str | os.PathLike, name: str,
               samplers: Sequence[TextureSampler] | None = None,
               transforms: Sequence[TextureTransform | None] | None = None) -> ExportedFiles:
    """Write OBJ + MTL + PNGs (as :func:`export_obj`) and ``<name>.glb`` (as :func:`export_glb`), all or nothing.

    The PNGs embedded in the GLB are byte-identical to the PNG files. Arguments, return value and errors as for
    :func:`export_obj`; ``glb`` is set in the result. ``samplers`` / ``transforms`` (per material) state how textures
    that live in their input's own image space are sampled (an edit's): written as the GLB's samplers and
    ``KHR_texture_transform``, and as ``map_Kd`` options where MTL can state them (``-clamp on``, ``-o`` / ``-s``;
    what it cannot goes into ``notes``). Default: the paint bake's samplers (:func:`csdtex.sampling.baked_samplers`),
    no transforms.
    """
    return _export(mesh, textures, out_dir, name, obj=True, glb=True, samplers=samplers, transforms=transforms)
