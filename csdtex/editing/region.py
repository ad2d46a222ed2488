"""The editable region of a textured mesh: a UV mask and a material selection, checked with one-line errors.

Masks are in UV space like the texture they limit: row 0 is the top of the image (v = 1). White (>= 128) is
editable, black is not; a greyscale image uses its value, an image with a non-opaque alpha channel uses the alpha.
A mask of another size is resized (nearest) to each texture's size; its aspect ratio must match the texture's.
Inside the mask, a feather of 2 texels ramps the edit in (0.5, then 1) so the edge does not show; outside, texels
are byte-identical to the input.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from csdtex.errors import ConfigError, MeshError, one_line
from csdtex.mesh import Mesh

FEATHER_TEXELS = 2
ASPECT_TOLERANCE = 0.01


@dataclass
class EditRegion:
    """Where an edit may change the texture.

    Attributes:
        weights: one float32 [H_m, W_m] array in [0, 1] per material, at the size of that material's texture (an
            8x8 array of zeros for a material without texture): 0 = keep the input texel exactly, 1 = editable,
            in between = the feather inside the mask edge.
        materials: names of the materials the edit may change.
        mask_record: ``{"path", "sha256", "size"}`` of the ``--mask`` file, or None.
    """

    weights: list[np.ndarray]
    materials: list[str]
    mask_record: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def editable_fraction(self) -> float:
        """Fraction of the editable materials' texels with a non-zero weight."""
        chosen = [w for w in self.weights if (w > 0).any()]
        return float(sum((w > 0).sum() for w in chosen) / max(1, sum(w.size for w in chosen)))


def check_edit_prompts(prompt: str, source: str) -> tuple[str, str]:
    """The stripped target prompt and source description; empty ones, or a source equal to the prompt, are a
    :class:`ConfigError`."""
    if not prompt or not prompt.strip():
        raise ConfigError('the prompt is empty: describe what the texture should become, e.g. "a blue object"')
    if not source or not source.strip():
        raise ConfigError('the source description is empty: describe the texture as it is now with --source, '
                          'e.g. --source "a red object"')
    if re.findall(r"\w+", prompt.lower()) == re.findall(r"\w+", source.lower()):  # "a red object." too
        raise ConfigError("the prompt and --source are the same: describe the change (the prompt) and the current "
                          "texture (--source) differently")
    return prompt.strip(), source.strip()


def edit_region(mesh: Mesh, mask_path: str | Path | None = None, material_names: Sequence[str] = ()) -> EditRegion:
    """The editable region of ``mesh`` for a ``--mask`` file and ``--material`` names (both optional, combined).

    Raises:
        MeshError: the mesh has no texture, or faces without UVs.
        ConfigError: an unknown or untextured material name, an unreadable or wrong-shaped mask, or a region that
            leaves nothing to edit.
    """
    textured = [m.texture is not None for m in mesh.materials]
    if not any(textured):
        problems = [w for w in mesh.warnings if "texture" in w]
        why = f" ({problems[0]})" if problems else ""
        raise MeshError(f"{_name(mesh)} has no texture to edit{why}: use `csdtex paint` to texture it from nothing")
    if not mesh.has_uvs:
        raise MeshError(f"{_name(mesh)} has faces without UVs, which cannot carry its texture: give every face UVs "
                        "in a 3D tool, or use `csdtex paint --unwrap` to texture it from nothing")
    names = [m.name for m in mesh.materials]
    chosen = list(dict.fromkeys(material_names)) if material_names else [n for n, t in zip(names, textured) if t]
    for name in chosen:
        if name not in names:
            raise ConfigError(f"--material {name!r} is not a material of {_name(mesh)}; it has "
                              f"{', '.join(repr(n) for n in names)}")
        if not textured[names.index(name)]:
            raise ConfigError(f"material {name!r} has no texture to edit; textured materials: "
                              f"{', '.join(repr(n) for n, t in zip(names, textured) if t)}")

    for material in mesh.materials:
        transform = material.texture_transform
        if material.name in chosen and transform is not None and not transform.is_identity:
            raise ConfigError(f"material {material.name!r} maps its texture through {transform.description}, which "
                              "csdtex edit does not support yet: bake the transform into the UVs in a 3D tool, or "
                              "leave the material out with --material")
    mask, mask_record = (None, None) if mask_path is None else read_uv_mask(mask_path)
    weights = []
    for material in mesh.materials:
        if material.texture is None or material.name not in chosen:
            shape = material.texture.shape[:2] if material.texture is not None else (8, 8)
            weights.append(np.zeros(shape, dtype=np.float32))
            continue
        height, width = material.texture.shape[:2]
        binary = np.ones((height, width), dtype=bool) if mask is None else _fit_mask(mask, height, width, material.name)
        weights.append(feathered(binary))
    region = EditRegion(weights=weights, materials=chosen, mask_record=mask_record)
    if not any((w > 0).any() for w in weights):
        where = f"the materials {', '.join(repr(n) for n in chosen)}" if material_names else "the texture"
        raise ConfigError(f"the mask leaves nothing of {where} to edit: paint the editable texels white")
    return region


def check_mask_reaches_the_surface(mesh: Mesh, region: EditRegion) -> None:
    """Raise :class:`ConfigError` when ``region``'s editable texels (a ``--mask``) all lie where no face of their
    material samples the texture (gutters, unused atlas space): the edit could change nothing a viewer shows.
    Each material's UV triangles are rasterized at its texture's size, placed by its sampler's wrap rule
    (:func:`csdtex.bake.rasterize_uv_layout`, on the CPU), texels bilinear filtering reaches counted as used."""
    from csdtex.bake import rasterize_uv_layout, reachable_texels
    from csdtex.sampling import TextureSampler

    render_mesh = mesh.to_render("cpu")
    for index, (material, weight) in enumerate(zip(mesh.materials, region.weights)):
        if material.texture is None or not (weight > 0).any():
            continue
        height, width = weight.shape
        fragments = rasterize_uv_layout(render_mesh, index, height, "torch", width,
                                        sampler=material.sampler or TextureSampler())
        used = reachable_texels(fragments.face_id[0] >= 0, mip_levels=0).numpy()
        if (used & (weight > 0)).any():
            return
    raise ConfigError("the mask's white texels all lie where no face uses the texture (gutters or unused atlas "
                      "space), so the edit would change nothing visible: paint white inside the UV islands, the "
                      "parts of the texture the surface uses")


def read_uv_mask(path: str | Path) -> tuple[np.ndarray, dict]:
    """A UV mask file as bool [H, W] (True = editable) and its record ``{"path", "sha256", "size"}``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"mask {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read mask {path}: {one_line(error)}") from None
    from PIL import Image, UnidentifiedImageError

    try:
        import io

        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise ConfigError(f"mask {path} is not an image Pillow can read: give a PNG, white = editable") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"mask {path} is not an image ({one_line(error)}): give a PNG, white = editable") from None
    from csdtex.io._common import image_alpha8, image_to_grey8

    alpha = image_alpha8(image)  # an alpha band, or a PNG tRNS transparency (indexed masks)
    if alpha is not None and alpha.min() < 255:
        values = alpha
    else:  # luminance; 16-bit / float greyscale scaled to 8 bits
        values = image_to_grey8(image)
    record = {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "size": [image.width, image.height]}
    return values >= 128, record


def _fit_mask(mask: np.ndarray, height: int, width: int, material: str) -> np.ndarray:
    mask_height, mask_width = mask.shape
    if abs(mask_width / mask_height - width / height) > ASPECT_TOLERANCE * (width / height):
        raise ConfigError(f"the mask is {mask_width}x{mask_height} but the texture of material '{material}' is "
                          f"{width}x{height}: give a mask with the texture's aspect ratio (ideally its size), or "
                          "limit the edit to materials of the mask's shape with --material")
    if mask.shape == (height, width):
        return mask
    from PIL import Image

    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized) >= 128


def feathered(binary: np.ndarray, texels: int = FEATHER_TEXELS) -> np.ndarray:
    """float32 [H, W] weights of a bool [H, W] region: 0 outside; inside, ``d / texels`` capped at 1 where ``d`` is
    the distance (in texels, >= 1) to the nearest outside texel, so the edit ramps in over ``texels`` texels."""
    if binary.all():
        return np.ones(binary.shape, dtype=np.float32)
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(binary)
    return np.clip(distance / texels, 0.0, 1.0).astype(np.float32)


def texture_records(mesh: Mesh) -> list[dict]:
    """``{"material", "source", "sha256", "size"}`` of every input texture (sha256 of its RGB bytes)."""
    return [
        {"material": m.name, "source": str(m.texture_source) if m.texture_source else None,
         "sha256": hashlib.sha256(np.ascontiguousarray(m.texture).tobytes()).hexdigest(),
         "size": [int(m.texture.shape[1]), int(m.texture.shape[0])]}
        for m in mesh.materials if m.texture is not None
    ]


def _name(mesh: Mesh) -> str:
    return mesh.source.name if mesh.source else "the mesh"
