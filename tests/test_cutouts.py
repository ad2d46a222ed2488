"""Alpha cut-outs in renders: depth peeling against a per-pixel reference, MASK / BLEND compositing as viewers do,
gradients through the holes, and cut-outs read from a glTF file reaching previews."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from csdtex.cameras import make_cameras, orbit_cameras
from csdtex.field import UVTexture
from csdtex.mesh import Mesh
from csdtex.mesh.types import Material
from csdtex.preview import input_texture_model, turntable_frames
from csdtex.render import rasterize
from csdtex.render.views import MAX_CUTOUT_LAYERS, render_views
from csdtex.sampling import TextureSampler, TextureTransform

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def stacked_quads(depths: list[float], half_size: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axis-aligned quads facing +Z at the given z, each of two triangles: (vertices [4Q, 3], faces [2Q, 3],
    uvs [4Q, 2]) with every quad's UVs spanning [0, 1]^2 (u along +X, v along +Y)."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half_size
    vertices, faces, uvs = [], [], []
    for index, z in enumerate(depths):
        vertices.append(np.column_stack([corners, np.full(4, z)]))
        faces.append(np.array([[0, 1, 2], [0, 2, 3]]) + 4 * index)
        uvs.append(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64))
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(uvs)


def front_camera(device="cpu"):
    return make_cameras([0.0], [0.0], 3.0, 40.0, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_peeling_lists_every_surface_of_a_pixel_once_front_to_back(device):
    # Five overlapping triangles at shuffled depths, drawn in a shuffled order, plus a sheared one crossing others:
    # layer k of a pixel must be the k-th nearest triangle covering it (a per-pixel sort of the triangles' depths).
    sphere = trimesh.creation.icosphere(2, radius=0.8)  # closed surface: 2 layers everywhere it covers
    mesh = Mesh(np.asarray(sphere.vertices), np.asarray(sphere.faces))
    render_mesh = mesh.to_render(device)
    cameras = make_cameras([10.0, -30.0], [20.0, 200.0], 3.0, 40.0, device=device)
    clip = cameras.project(render_mesh.positions)
    layers = [rasterize(clip, render_mesh.faces, 48)]
    for _ in range(3):
        layers.append(rasterize(clip, render_mesh.faces, 48, behind=layers[-1]))
    front, back, third, fourth = layers
    assert front.mask.sum() > 1000
    # A convex closed surface: everything covered has exactly one surface behind it, and nothing behind that.
    assert torch.equal(back.mask, front.mask)
    assert not third.mask.any() and not fourth.mask.any()
    covered = front.mask
    assert (back.depth[covered] > front.depth[covered]).all()
    assert not (back.face_id[covered] == front.face_id[covered]).any()

    # Against a reference on a scene where several triangles overlap: the k-th layer is the k-th smallest depth.
    vertices, faces, _ = stacked_quads([0.3, -0.4, 0.0, 0.6])
    rng = np.random.default_rng(3)
    vertices = vertices + rng.normal(scale=0.05, size=vertices.shape)  # tilted, not parallel
    order = rng.permutation(len(faces))
    render_mesh = Mesh(vertices, faces[order]).to_render(device)
    clip = front_camera(device).project(render_mesh.positions)
    layer = rasterize(clip, render_mesh.faces, 40)
    all_depths = []
    while layer.mask.any():
        all_depths.append(torch.where(layer.mask, layer.depth, torch.inf))
        layer = rasterize(clip, render_mesh.faces, 40, behind=layer)
    assert len(all_depths) == 4  # four quads: four layers where they all overlap
    stacked = torch.stack(all_depths)
    assert (stacked[1:] >= stacked[:-1]).all()  # front to back at every pixel
    # Each pixel's layers are distinct triangles, and their number is the number of triangles covering it.
    single = [rasterize(clip, render_mesh.faces[i : i + 1], 40) for i in range(len(faces))]
    covering = torch.stack([s.mask[0] for s in single]).sum(0)
    assert torch.equal(torch.isfinite(stacked[:, 0]).sum(0), covering)


def two_quads_mesh(alpha: np.ndarray, mode: str, sampler=None, transform=None, cutoff=0.5) -> Mesh:
    """A blue quad at z = +0.5 (material 0, with ``alpha``) in front of a red quad at z = -0.5 (material 1)."""
    vertices, faces, uvs = stacked_quads([0.5, -0.5])
    blue = np.zeros(alpha.shape + (3,), np.uint8)
    blue[..., 2] = 255
    front = Material("front", texture=blue, alpha=alpha, alpha_mode=mode, alpha_cutoff=cutoff, sampler=sampler,
                     texture_transform=transform)
    back = Material("back", base_color=(1.0, 0.0, 0.0))
    return Mesh(vertices, faces, uvs=uvs, uv_faces=faces.copy(), face_materials=np.array([0, 0, 1, 1]),
                materials=[front, back])


def test_mask_shows_the_surface_behind_where_alpha_is_below_the_cutoff():
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255  # the right half of the front quad is drawn, the left half is a hole
    mesh = two_quads_mesh(alpha, "MASK", sampler=TextureSampler(mag_filter="nearest"))
    render_mesh = mesh.to_render()
    assert render_mesh.cutouts is not None and render_mesh.cutouts.per_material[1] is None
    image = render_views(render_mesh, input_texture_model(mesh), front_camera(), 64).image[0]
    row = image[32]
    blue, red, white = torch.tensor([0.0, 0, 1]), torch.tensor([1.0, 0, 0]), torch.ones(3)
    is_blue = (row - blue).abs().amax(-1) < 3e-3
    is_red = (row - red).abs().amax(-1) < 3e-3
    is_white = (row - white).abs().amax(-1) < 3e-3
    assert (is_blue | is_red | is_white).all()
    left, right = np.flatnonzero(is_red.numpy()), np.flatnonzero(is_blue.numpy())
    assert len(left) > 5 and len(right) > 5 and left.max() < right.min()  # red through the hole, then blue
    # Without the cut-out, the front quad hides the back one entirely.
    opaque = two_quads_mesh(alpha, "MASK")
    opaque.materials[0].alpha, opaque.materials[0].alpha_mode = None, "OPAQUE"
    assert opaque.to_render().cutouts is None
    plain = render_views(opaque.to_render(), input_texture_model(opaque), front_camera(), 64).image[0, 32]
    assert not ((plain - red).abs().amax(-1) < 3e-3).any()


def test_mask_cutoff_and_blend_weights():
    alpha = np.full((4, 4), 102, np.uint8)  # 0.4 everywhere
    low = render_views(two_quads_mesh(alpha, "MASK", cutoff=0.3).to_render(),
                       input_texture_model(two_quads_mesh(alpha, "MASK")), front_camera(), 32).image[0, 16, 16]
    high = render_views(two_quads_mesh(alpha, "MASK", cutoff=0.5).to_render(),
                        input_texture_model(two_quads_mesh(alpha, "MASK")), front_camera(), 32).image[0, 16, 16]
    assert torch.allclose(low, torch.tensor([0.0, 0.0, 1.0]), atol=3e-3)  # 0.4 >= 0.3: drawn
    assert torch.allclose(high, torch.tensor([1.0, 0.0, 0.0]), atol=3e-3)  # 0.4 < 0.5: the red quad shows
    mesh = two_quads_mesh(alpha, "BLEND")
    blended = render_views(mesh.to_render(), input_texture_model(mesh), front_camera(), 32).image[0, 16, 16]
    assert torch.allclose(blended, torch.tensor([0.6, 0.0, 0.4]), atol=3e-3)  # 0.4 blue over 0.6 red
    # A half-transparent quad in front of nothing: 0.4 of its colour over the background.
    lone = Mesh(*stacked_quads([0.0])[:2], uvs=stacked_quads([0.0])[2], uv_faces=stacked_quads([0.0])[1],
                face_materials=np.zeros(2, np.int64), materials=[mesh.materials[0]])
    output = render_views(lone.to_render(), input_texture_model(lone), front_camera(), 32, background=0.0)
    assert torch.allclose(output.image[0, 16, 16], torch.tensor([0.0, 0.0, 0.4]), atol=3e-3)
    assert output.mask[0, 16, 16]


def test_cutout_alpha_follows_the_texture_transform_and_sampler():
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    # A transform that mirrors u (scale -1, offset 1): the hole moves to the right half.
    mirrored = two_quads_mesh(alpha, "MASK", sampler=TextureSampler(mag_filter="nearest"),
                              transform=TextureTransform.from_obj(offset=(1.0, 0.0), scale=(-1.0, 1.0)))
    row = render_views(mirrored.to_render(), input_texture_model(mirrored), front_camera(), 64).image[0, 32]
    red = np.flatnonzero(((row - torch.tensor([1.0, 0, 0])).abs().amax(-1) < 3e-3).numpy())
    blue = np.flatnonzero(((row - torch.tensor([0.0, 0, 1])).abs().amax(-1) < 3e-3).numpy())
    assert len(red) > 5 and len(blue) > 5 and blue.max() < red.min()


def test_gradient_reaches_the_surface_seen_through_a_hole_and_only_where_it_is_seen():
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    mesh = two_quads_mesh(alpha, "MASK", sampler=TextureSampler(mag_filter="nearest"))
    model = UVTexture(2, 8)
    image = render_views(mesh.to_render(), model, front_camera(), 48).image
    image.sum().backward()
    grad = model.logits.grad.abs().sum(1)  # [2, 8, 8]
    assert grad[1].sum() > 0  # the back quad is seen through the hole
    # the front quad only where it is drawn (column 3 reaches the drawn half through bilinear filtering)
    assert grad[0][:, :3].sum() == 0 and grad[0][:, 4:].sum() > 0


def test_layers_stop_at_the_limit_and_leave_the_rest_to_the_background():
    depths = [0.5 - 0.2 * k for k in range(MAX_CUTOUT_LAYERS + 2)]
    vertices, faces, uvs = stacked_quads(depths)
    clear = Material("clear", texture=np.zeros((2, 2, 3), np.uint8), alpha=np.zeros((2, 2), np.uint8),
                     alpha_mode="MASK")
    mesh = Mesh(vertices, faces, uvs=uvs, uv_faces=faces.copy(), face_materials=np.zeros(len(faces), np.int64),
                materials=[clear])
    output = render_views(mesh.to_render(), input_texture_model(mesh), front_camera(), 16, background=0.25)
    assert torch.allclose(output.image, torch.full_like(output.image, 0.25))
    assert not output.mask.any()


def test_a_gltf_cutout_reaches_the_turntable_preview(tmp_path):
    from csdtex.export import export_glb
    from csdtex.io import load_mesh

    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    mesh = two_quads_mesh(alpha, "MASK", sampler=TextureSampler(mag_filter="nearest"))
    textures = [m.texture if m.texture is not None else np.full((4, 4, 3), (255, 0, 0), np.uint8)
                for m in mesh.materials]
    path = tmp_path / "cutout.glb"
    export_glb(mesh, textures, path)
    loaded = load_mesh(path)
    assert loaded.materials[0].alpha_mode == "MASK"
    assert (loaded.materials[0].alpha[:, :4] == 0).all() and (loaded.materials[0].alpha[:, 4:] == 255).all()
    frames = turntable_frames(loaded.to_render(), input_texture_model(loaded), num_frames=1, resolution=64,
                              shading="albedo")
    row = frames[0, 32].astype(int)
    assert ((row[:, 0] > 240) & (row[:, 2] < 15)).sum() > 5  # red seen through the hole of the front quad
    assert ((row[:, 2] > 240) & (row[:, 0] < 15)).sum() > 5


def test_orbit_of_a_cut_out_quad_shows_holes_from_both_sides():
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:4] = 255  # top half drawn
    vertices, faces, uvs = stacked_quads([0.0])
    leaf = Material("leaf", texture=np.full((8, 8, 3), (0, 200, 0), np.uint8), alpha=alpha, alpha_mode="MASK",
                    sampler=TextureSampler(mag_filter="nearest"))
    mesh = Mesh(vertices, faces, uvs=uvs, uv_faces=faces.copy(), face_materials=np.zeros(2, np.int64),
                materials=[leaf])
    output = render_views(mesh.to_render(), input_texture_model(mesh), orbit_cameras(2, elevation_deg=0.0), 32)
    for view in range(2):  # front and back: the bottom half of the quad is a hole, the top half drawn
        drawn = output.mask[view]
        assert drawn[:16].sum() > 50 and drawn[17:].sum() == 0


@pytest.mark.gpu
def test_cutouts_render_the_same_with_nvdiffrast_as_with_torch():
    pytest.importorskip("nvdiffrast")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    mesh = two_quads_mesh(alpha, "MASK", sampler=TextureSampler(mag_filter="nearest"))
    render_mesh, model = mesh.to_render("cuda"), input_texture_model(mesh).to("cuda")
    cameras = make_cameras([0.0, 20.0], [0.0, 30.0], 3.0, 40.0, device="cuda")
    torch_image = render_views(render_mesh, model, cameras, 64, backend="torch").image
    nvdiffrast_image = render_views(render_mesh, model, cameras, 64, backend="nvdiffrast").image
    differs = (torch_image - nvdiffrast_image).abs().amax(-1) > 1e-3
    assert differs.float().mean() < 0.01  # only pixel centres on triangle edges may go either way
