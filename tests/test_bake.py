"""Bake round trips: a field that is a known function of 3D position, baked into UVs and sampled back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh
import xatlas

from csdtex.bake import bake_texture, reachable_texels
from csdtex.errors import ConfigError
from csdtex.mesh import Mesh


class AnalyticField(torch.nn.Module):
    """Colour = smooth function of the normalized 3D position; ignores UVs."""

    uses_uvs = False

    def __init__(self):
        super().__init__()
        self.frequency = torch.nn.Parameter(torch.tensor([[1.3, -0.7, 0.9], [0.4, 1.1, -1.2], [-0.8, 0.5, 1.4]]))

    def forward(self, points, uvs=None, materials=None):
        return 0.5 + 0.4 * torch.sin(2.0 * points @ self.frequency.T)


def unwrapped(trimesh_mesh, resolution: int = 256, padding: int = 8) -> Mesh:
    atlas = xatlas.Atlas()
    atlas.add_mesh(trimesh_mesh.vertices, trimesh_mesh.faces)
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding = resolution, padding
    atlas.generate(pack_options=pack)
    vmapping, indices, uvs = atlas[0]
    assert np.array_equal(vmapping[indices], trimesh_mesh.faces)
    return Mesh(trimesh_mesh.vertices, trimesh_mesh.faces, uvs=uvs, uv_faces=indices)


@pytest.fixture(scope="module")
def sphere_mesh() -> Mesh:
    return unwrapped(trimesh.creation.icosphere(3))


def sample_texture(texture_u8: np.ndarray, uvs: torch.Tensor, mip_level: int = 0) -> torch.Tensor:
    """Bilinear sample of an 8-bit texture (row 0 = top) at UVs (0,0 = bottom-left), after 2^level box filtering."""
    image = torch.as_tensor(texture_u8).permute(2, 0, 1)[None].float() / 255.0
    if mip_level:
        image = F.avg_pool2d(image, 2**mip_level)
    grid = torch.stack([uvs[:, 0] * 2 - 1, 1 - uvs[:, 1] * 2], dim=-1)[None, None]
    return F.grid_sample(image, grid, mode="bilinear", align_corners=False, padding_mode="border")[0, :, 0].T


def random_surface_samples(mesh: Mesh, count: int, seed: int = 0):
    generator = np.random.default_rng(seed)
    faces = generator.integers(0, mesh.num_faces, count)
    weights = generator.dirichlet(np.ones(3), count)
    render_mesh = mesh.to_render()
    weights_t = torch.as_tensor(weights, dtype=torch.float32)[..., None]
    points = (render_mesh.positions[render_mesh.faces[faces].long()] * weights_t).sum(1)
    uvs = (render_mesh.uvs[render_mesh.uv_faces[faces].long()] * weights_t).sum(1)
    return points, uvs


def test_baked_field_reproduces_the_function_at_surface_points(sphere_mesh):
    field = AnalyticField()
    baked = bake_texture(sphere_mesh, field, size=512)
    points, uvs = random_surface_samples(sphere_mesh, 4000)
    expected = field(points).detach()
    error = (sample_texture(baked.images[0], uvs) - expected).abs()
    assert error.max().item() < 4.0 / 255.0, f"max error {error.max().item() * 255:.2f} levels"


@pytest.mark.parametrize("mip_level", [1, 2, 3])
def test_gutter_keeps_mip_levels_faithful_near_seams(sphere_mesh, mip_level):
    field = AnalyticField()
    baked = bake_texture(sphere_mesh, field, size=256)
    points, uvs = random_surface_samples(sphere_mesh, 4000, seed=mip_level)
    expected = field(points).detach()
    error = (sample_texture(baked.images[0], uvs, mip_level) - expected).abs().max().item()
    # The same texture with its gutter blacked out shows what an unfilled gutter does at this level.
    blacked = baked.images[0] * baked.coverage[0][..., None]
    error_unfilled = (sample_texture(blacked, uvs, mip_level) - expected).abs().max().item()
    assert error_unfilled > 0.2
    assert error < 0.02 * 2**mip_level, f"mip {mip_level}: max error {error:.3f}"


def test_no_reachable_texel_is_left_empty(sphere_mesh):
    baked = bake_texture(sphere_mesh, AnalyticField(), size=128)
    coverage = torch.as_tensor(baked.coverage[0])
    # Independent check: every texel of a 2^L block next to a block with a covered texel, for L = 0..3.
    size = coverage.shape[0]
    for level in range(4):
        block = 2**level
        blocks = coverage.reshape(size // block, block, size // block, block).any(3).any(1)
        near = F.max_pool2d(blocks.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0
        needed = near.repeat_interleave(block, 0).repeat_interleave(block, 1)
        assert baked.filled[0][needed.numpy()].all()
    assert torch.equal(reachable_texels(coverage), torch.as_tensor(baked.filled[0]))
    assert baked.images[0].dtype == np.uint8 and baked.images[0].shape == (128, 128, 3)


def test_bake_per_material_uses_only_its_own_faces():
    box = trimesh.creation.box()
    mesh = unwrapped(box)
    materials = np.arange(mesh.num_faces) % 2
    from csdtex.mesh import Material

    mesh = mesh.copy_with(face_materials=materials, materials=[Material("even"), Material("odd")])
    baked = bake_texture(mesh, AnalyticField(), size=64)
    assert len(baked.images) == 2
    assert baked.coverage[0].sum() > 0 and baked.coverage[1].sum() > 0
    assert not (baked.coverage[0] & baked.coverage[1]).any()


def test_bake_refuses_a_mesh_without_uvs_and_bad_sizes(sphere_mesh):
    sphere = trimesh.creation.icosphere(1)
    with pytest.raises(ConfigError, match="unwrap"):
        bake_texture(Mesh(sphere.vertices, sphere.faces), AnalyticField(), size=64)
    with pytest.raises(ConfigError, match="texture size"):
        bake_texture(sphere_mesh, AnalyticField(), size=3)


def test_bake_limited_to_kept_texels_gives_the_full_bakes_values_there():
    """``bake_material_values(..., only=...)`` (an edit's region) queries the model at the kept texels alone, yet
    each kept texel gets the full bake's value exactly: reachable ones their own, unreachable ones the nearest
    reachable texel's (queried for them), gutters included; the model sees far fewer points."""
    from csdtex.bake import bake_material_values

    positions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mesh = Mesh(positions, np.array([[0, 1, 2], [0, 2, 3]]), uvs=np.array([[0.1, 0.1], [0.4, 0.1], [0.1, 0.4],
                                                                          [0.6, 0.6]]),
                uv_faces=np.array([[0, 1, 2], [0, 2, 3]]))
    render_mesh = mesh.to_render()

    class Counting(AnalyticField):
        points = 0

        def forward(self, points, uvs=None, materials=None):
            Counting.points += len(points)
            return super().forward(points, uvs, materials)

    model = Counting()
    with torch.no_grad():
        full, _, reachable = bake_material_values(render_mesh, model, 0, 64, 64, mip_levels=0)
        queried_full, Counting.points = Counting.points, 0
        only = torch.zeros(64, 64, dtype=torch.bool)
        only[2:20, 40:60] = True  # mostly far from the triangles: unreachable texels that copy a neighbour
        only[30:40, 10:30] = True
        part, _, _ = bake_material_values(render_mesh, model, 0, 64, 64, mip_levels=0, only=only)
    assert (~torch.as_tensor(reachable) & only).any() and (torch.as_tensor(reachable) & only).any()
    assert torch.equal(part[only], full[only])
    assert Counting.points < queried_full / 2
