"""Texture models: hash grid encoding (against a naive per-point reference), implicit field, UV texture."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from csdtex.field import FieldConfig, ImplicitTextureField, TextureModel, UVTexture, query_texture
from csdtex.hashgrid import HashGridEncoding, hash_grid_encode, hash_grid_level_resolutions

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
DTYPES = [torch.float32, torch.float64]

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def tiny_encoding(**overrides) -> HashGridEncoding:
    """3 levels (res 2, 4, 8) over a 64-row table: level 0 dense (27 rows), levels 1-2 hashed."""
    settings = dict(num_levels=3, features_per_level=2, log2_hashmap_size=6, base_resolution=2, max_resolution=8)
    settings.update(overrides)
    return HashGridEncoding(**settings)


def randomize_table(encoding: HashGridEncoding, scale: float = 1.0) -> HashGridEncoding:
    with torch.no_grad():
        encoding.table.uniform_(-scale, scale)
    return encoding


def reference_encoding(encoding: HashGridEncoding, points01: np.ndarray) -> tuple[np.ndarray, list]:
    """Naive per-point, per-level, per-corner evaluation with Python ints and Instant-NGP's uint32 hash.

    Returns (features float64 [N, L*F], per point a list of (table row, weight) over all levels and corners).
    """
    table = encoding.table.detach().double().cpu().numpy()
    hashmap_size = 2**encoding.log2_hashmap_size
    primes = (1, 2654435761, 805459861)
    features = np.zeros((len(points01), encoding.output_dim))
    touched = []
    for p, point in enumerate(points01):
        rows = []
        for level, res in enumerate(encoding.level_resolutions):
            offset = int(encoding.level_offsets[level])
            dense = (res + 1) ** 3 <= hashmap_size
            scaled = [float(c) * res for c in point]
            lower = [min(max(int(np.floor(s)), 0), res - 1) for s in scaled]
            frac = [s - lo for s, lo in zip(scaled, lower)]
            value = np.zeros(encoding.features_per_level)
            for i in (0, 1):
                for j in (0, 1):
                    for k in (0, 1):
                        x, y, z = lower[0] + i, lower[1] + j, lower[2] + k
                        if dense:
                            row = x + y * (res + 1) + z * (res + 1) ** 2
                        else:
                            hashed = (x * primes[0]) ^ ((y * primes[1]) % 2**32) ^ ((z * primes[2]) % 2**32)
                            row = hashed % hashmap_size
                        weight = (frac[0] if i else 1 - frac[0]) * (frac[1] if j else 1 - frac[1])
                        weight *= frac[2] if k else 1 - frac[2]
                        value += weight * table[offset + row]
                        rows.append((offset + row, weight))
            features[p, level * encoding.features_per_level : (level + 1) * encoding.features_per_level] = value
        touched.append(rows)
    return features, touched


# ----------------------------------------------------------------------------------------------------------------------
# HashGridEncoding
# ----------------------------------------------------------------------------------------------------------------------


def test_default_levels_follow_the_growth_rule_and_dense_selection():
    encoding = HashGridEncoding()
    resolutions = encoding.level_resolutions
    assert resolutions[0] == 16 and resolutions[-1] == 2048 and len(resolutions) == 16
    growth = np.exp((np.log(2048) - np.log(16)) / 15)
    assert resolutions == [int(np.floor(16 * growth**level + 1e-6)) for level in range(16)]
    assert encoding.level_is_dense == [(res + 1) ** 3 <= 2**19 for res in resolutions]
    assert encoding.level_is_dense == [True] * 5 + [False] * 11  # 58^3 dense, 80 -> 81^3 > 2^19 hashed
    assert encoding.table.shape == (sum((r + 1) ** 3 for r in resolutions[:5]) + 11 * 2**19, 2)
    assert encoding.table.dtype == torch.float32
    assert float(encoding.table.detach().abs().max()) <= 1e-4
    assert list(encoding.state_dict()) == ["table"]


@pytest.mark.parametrize(
    "num_levels, base, finest, log2_size",
    [(1, 8, 8, 4), (3, 2, 8, 6), (8, 4, 256, 12), (16, 16, 512, 16)],
)
def test_dense_levels_are_exactly_those_that_fit(num_levels, base, finest, log2_size):
    encoding = HashGridEncoding(num_levels, 2, log2_size, base, finest)
    resolutions = hash_grid_level_resolutions(num_levels, base, finest)
    assert encoding.level_resolutions == resolutions and resolutions[-1] == finest
    for level, res in enumerate(resolutions):
        dense = (res + 1) ** 3 <= 2**log2_size
        assert encoding.level_is_dense[level] == dense
        assert encoding.level_table(level).shape[0] == ((res + 1) ** 3 if dense else 2**log2_size)
        if not dense:  # hashed levels sit at multiples of the table size (their offset is XOR-ed into the hash)
            assert int(encoding.level_offsets[level]) % 2**log2_size == 0
    # The level tables tile the whole table without overlap.
    starts = encoding.level_offsets.tolist()
    ends = [start + encoding.level_table(level).shape[0] for level, start in enumerate(starts)]
    assert sorted(zip(starts, ends))[0][0] == 0 and max(ends) == encoding.table.shape[0]
    assert all(a[1] == b[0] for a, b in zip(sorted(zip(starts, ends)), sorted(zip(starts, ends))[1:]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_output_shape_and_dtype(device, dtype):
    encoding = HashGridEncoding(**_encoding_kwargs(FieldConfig.small())).to(device, dtype)
    points = torch.rand(1000, 3, device=device)
    features = encoding(points)
    assert features.shape == (1000, 32) and features.dtype == dtype and features.device.type == device
    assert encoding(torch.zeros(0, 3, device=device)).shape == (0, 32)


@pytest.mark.parametrize("device", DEVICES)
def test_matches_naive_reference_on_dense_and_hashed_levels(device):
    encoding = randomize_table(HashGridEncoding(log2_hashmap_size=16, max_resolution=4096)).to(device, torch.float64)
    assert 0 < encoding.num_dense_levels < encoding.num_levels
    points = np.concatenate([np.random.default_rng(0).random((12, 3)), [[0, 0, 0], [1, 1, 1], [1, 0, 0.5]]])
    expected, _ = reference_encoding(encoding, points)
    actual = encoding(torch.as_tensor(points, device=device)).detach().cpu().numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_points_on_dense_grid_vertices_reproduce_table_entries(device):
    encoding = randomize_table(HashGridEncoding()).to(device)
    for level in (0, 1, 4):  # resolutions 16 (exact in binary), 22 and 58
        assert encoding.level_is_dense[level]
        res = encoding.level_resolutions[level]
        vertices = torch.cartesian_prod(*[torch.arange(res + 1, device=device)] * 3)[::7]  # [V, 3] as (x, y, z)
        features = encoding(vertices.float() / res)[:, 2 * level : 2 * level + 2]
        rows = vertices[:, 0] + vertices[:, 1] * (res + 1) + vertices[:, 2] * (res + 1) ** 2
        torch.testing.assert_close(features, encoding.level_table(level)[rows].detach(), rtol=0, atol=1e-5)


def test_nearby_points_have_nearby_features():
    encoding = randomize_table(HashGridEncoding(**_encoding_kwargs(FieldConfig.small())))
    points = torch.rand(2000, 3, dtype=torch.float64) * 0.98 + 0.01
    encoding = encoding.double()
    step = 1e-6
    direction = torch.nn.functional.normalize(torch.randn_like(points), dim=1)
    change = (encoding(points + step * direction) - encoding(points)).abs().max()
    # Per level the features are Lipschitz with constant <= 2 * res * sqrt(3) * max|table| (x 2 for two levels' sums).
    assert change <= 2 * np.sqrt(3) * 512 * step * 2
    # Across a cell boundary of every level (x = 0.5 is a vertex of every even resolution, 1/16 of the first).
    for boundary in (0.5, 1 / 16):
        below = torch.tensor([[boundary - 1e-9, 0.3, 0.7]], dtype=torch.float64)
        above = torch.tensor([[boundary + 1e-9, 0.3, 0.7]], dtype=torch.float64)
        assert (encoding(below) - encoding(above)).abs().max() < 1e-5
    # ... while unrelated points differ by O(1).
    assert (encoding(points) - encoding(points.flip(0))).abs().max() > 0.3


def test_gradcheck_float64_tiny_config():
    encoding = randomize_table(tiny_encoding()).double()
    assert encoding.level_is_dense == [True, False, False]
    points = torch.rand(20, 3, dtype=torch.float64)
    table = encoding.table.detach().clone().requires_grad_(True)

    def encode(table_values):
        return hash_grid_encode(
            points, table_values, encoding._resolutions, encoding.level_offsets, encoding.num_dense_levels,
            encoding.hashmap_size, points_per_chunk=7,  # several chunks, last one partial
        )

    assert torch.autograd.gradcheck(encode, (table,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_reaches_only_the_touched_table_rows(device):
    encoding = randomize_table(HashGridEncoding(**_encoding_kwargs(FieldConfig.small()))).to(device, torch.float64)
    point = np.array([[0.123, 0.456, 0.789]])
    _, touched = reference_encoding(encoding, point)
    encoding(torch.as_tensor(point, device=device))[:, ::2].sum().backward()  # feature 0 of every level
    expected = torch.zeros_like(encoding.table)
    for row, weight in touched[0]:
        expected[row, 0] += weight
    gradient = encoding.table.grad
    assert int((gradient != 0).any(dim=1).sum()) <= 8 * encoding.num_levels
    torch.testing.assert_close(gradient, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_kept_and_recomputed_corners_give_the_same_gradient(device, monkeypatch):
    """Small calls keep the forward pass's corner indices and weights for the backward pass; large or chunked ones
    recompute them. Both give the same table gradient: bit for bit on the CPU in one chunk; on CUDA the index_add's
    atomic additions land in any order, so there (and across chunks) up to float32 rounding."""
    import csdtex.hashgrid as hashgrid

    encoding = randomize_table(HashGridEncoding(**_encoding_kwargs(FieldConfig.small()))).to(device)
    points = torch.rand(3000, 3, generator=torch.Generator().manual_seed(0)).to(device)
    upstream = torch.randn(3000, encoding.output_dim, generator=torch.Generator().manual_seed(1)).to(device)

    def gradient(points_per_chunk: int) -> torch.Tensor:
        encoding.table.grad = None
        out = hash_grid_encode(points, encoding.table, encoding._resolutions, encoding.level_offsets,
                               encoding.num_dense_levels, encoding.hashmap_size, points_per_chunk)
        out.backward(upstream)
        return encoding.table.grad.clone()

    kept = gradient(2**16)
    monkeypatch.setattr(hashgrid, "KEEP_CORNERS_MAX_BYTES", 0)
    recomputed = gradient(2**16)  # in one chunk
    if device == "cpu":
        assert torch.equal(recomputed, kept)
    torch.testing.assert_close(recomputed, kept, rtol=1e-6, atol=1e-7)
    chunked = gradient(1000)  # three chunks: never kept; index_add order per chunk may round differently
    torch.testing.assert_close(chunked, kept, rtol=1e-6, atol=1e-7)


def test_points_receive_no_gradient_and_out_of_range_points_are_clamped():
    encoding = randomize_table(tiny_encoding())
    points = torch.tensor([[-0.5, 0.2, 1.7]], requires_grad=True)
    features = encoding(points)
    torch.testing.assert_close(features, encoding(torch.tensor([[0.0, 0.2, 1.0]])))
    features.sum().backward()
    assert points.grad is None and encoding.table.grad is not None
    nan_point = encoding(torch.tensor([[float("nan"), 0.2, 1.0]]))  # read as 0 rather than an out-of-range row
    torch.testing.assert_close(nan_point, encoding(torch.tensor([[0.0, 0.2, 1.0]])))


def test_large_forward_on_cpu_is_fast_enough():
    encoding = HashGridEncoding()  # the full default configuration
    points = torch.rand(200_000, 3)
    start = time.perf_counter()
    with torch.no_grad():
        features = encoding(points)
    elapsed = time.perf_counter() - start
    assert features.shape == (200_000, 32) and torch.isfinite(features).all()
    assert elapsed < 15.0, f"200k-point forward took {elapsed:.1f} s"


@pytest.mark.gpu
def test_cuda_matches_cpu_forward_and_backward():
    cpu = randomize_table(HashGridEncoding(**_encoding_kwargs(FieldConfig.small())))
    cuda = HashGridEncoding(**_encoding_kwargs(FieldConfig.small())).cuda()
    cuda.load_state_dict(cpu.state_dict())
    points = torch.rand(50_000, 3)
    weights = torch.randn(50_000, 32)
    (cpu(points) * weights).sum().backward()
    (cuda(points.cuda()) * weights.cuda()).sum().backward()
    torch.testing.assert_close(cuda(points.cuda()).cpu(), cpu(points), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cuda.table.grad.cpu(), cpu.table.grad, rtol=1e-4, atol=1e-4)


def _encoding_kwargs(config: FieldConfig) -> dict:
    return dict(
        num_levels=config.num_levels,
        features_per_level=config.features_per_level,
        log2_hashmap_size=config.log2_hashmap_size,
        base_resolution=config.base_resolution,
        max_resolution=config.max_resolution,
    )


# ----------------------------------------------------------------------------------------------------------------------
# ImplicitTextureField
# ----------------------------------------------------------------------------------------------------------------------


def test_field_config_defaults_and_small_preset():
    default = FieldConfig()
    assert (default.num_levels, default.features_per_level, default.log2_hashmap_size) == (16, 2, 19)
    assert (default.base_resolution, default.max_resolution, default.hidden_dim) == (16, 2048, 64)
    small = FieldConfig.small()
    assert (small.log2_hashmap_size, small.max_resolution) == (16, 512)


@pytest.mark.parametrize("device", DEVICES)
def test_implicit_field_output_shape_and_range(device):
    field = ImplicitTextureField(FieldConfig.small()).to(device)
    assert isinstance(field, TextureModel) and not field.uses_uvs
    directions = torch.nn.functional.normalize(torch.randn(500, 3, device=device), dim=1)
    points = directions * torch.rand(500, 1, device=device)  # inside the unit sphere
    albedo = field(points)
    assert albedo.shape == (500, 3) and albedo.dtype == torch.float32
    assert bool(((albedo > 0) & (albedo < 1)).all())
    torch.testing.assert_close(field(points, torch.rand(500, 2, device=device), None), albedo)  # uvs ignored
    assert list(field.mlp[0].weight.shape) == [64, 32]


@pytest.fixture
def one_thread():
    """80 optimizer steps of many small ops: with several OpenMP threads on a busy (shared) CPU every op waits on a
    barrier and the loop runs 10-20x slower; one thread keeps the test at about 2 s anywhere."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_implicit_field_fits_red_and_blue_halves(one_thread):
    torch.manual_seed(0)
    config = FieldConfig(num_levels=6, log2_hashmap_size=14, base_resolution=4, max_resolution=64, hidden_dim=32)
    field = ImplicitTextureField(config)
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-2)
    points = torch.rand(2048, 3) * 2 - 1
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    target = torch.where(points[:, :1] > 0, red, blue)
    for _ in range(80):
        optimizer.zero_grad()
        loss = (field(points) - target).square().mean()
        loss.backward()
        optimizer.step()
    test_points = torch.rand(2000, 3) * 2 - 1
    test_points = test_points[test_points[:, 0].abs() > 0.05]  # away from the discontinuity
    error = (field(test_points) - torch.where(test_points[:, :1] > 0, red, blue)).abs().mean()
    assert error < 0.05, f"mean abs error {float(error):.3f}"


# ----------------------------------------------------------------------------------------------------------------------
# UVTexture
# ----------------------------------------------------------------------------------------------------------------------


def texel_centres(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UVs of all texel centres, with their row and column: row 0 = top (v near 1)."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    uvs = torch.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], dim=1)
    return uvs, rows, cols


def test_from_images_to_images_round_trip_is_exact():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    images[0][0, :, :] = 0  # the extremes must survive the logit clamp
    images[1][0, :, :] = 255
    images.append(np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2))  # every level
    texture = UVTexture.from_images(images)
    assert texture.logits.shape == (3, 3, 16, 16) and texture.logits.dtype == torch.float32
    assert torch.isfinite(texture.logits).all()
    for original, restored in zip(images, texture.to_images()):
        assert restored.dtype == np.uint8 and restored.shape == (16, 16, 3)
        np.testing.assert_array_equal(restored, original)


def test_from_images_resizes_to_a_common_square_size():
    from PIL import Image

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), rng.integers(0, 256, (16, 12, 4), dtype=np.uint8)]
    texture = UVTexture.from_images(images)
    assert texture.size == 16 and texture.num_materials == 2
    restored = texture.to_images()
    expected = np.asarray(Image.fromarray(images[1][:, :, :3]).resize((16, 16), Image.Resampling.LANCZOS))
    assert np.abs(restored[1].astype(int) - expected.astype(int)).max() <= 1
    assert UVTexture.from_images(images, size=4).to_images()[0].shape == (4, 4, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_at_texel_centres_returns_texel_colours(device):
    image = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    texture = UVTexture.from_images([image]).to(device)
    uvs, rows, cols = texel_centres(8)
    albedo = texture(None, uvs.to(device)).cpu()
    expected = torch.as_tensor(image[rows.numpy(), cols.numpy()], dtype=torch.float32) / 255
    torch.testing.assert_close(albedo, expected, rtol=0, atol=1e-5)


def test_orientation_top_of_image_is_v_one_and_left_is_u_zero():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[:16] = RED  # top half of the PNG
    image[16:, :16] = GREEN  # bottom-left quarter
    texture = UVTexture.from_images([image])
    albedo = texture(None, torch.tensor([[0.5, 0.9], [0.5, 0.1], [0.1, 0.1], [0.9, 0.1]]))
    assert albedo[0, 0] > 0.99 and albedo[0, 1:].max() < 0.01  # v = 0.9: red
    assert albedo[1, 0] < 0.01  # v = 0.1: not red
    assert albedo[2, 1] > 0.99  # u = 0.1, v = 0.1: green
    assert albedo[3].max() < 0.01  # u = 0.9, v = 0.1: black


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_per_material_selection(index_dtype):
    colours = [RED, GREEN, BLUE]
    texture = UVTexture.from_images([np.full((4, 4, 3), colour, dtype=np.uint8) for colour in colours])
    materials = torch.randint(0, 3, (300,), dtype=index_dtype)
    albedo = texture(torch.zeros(300, 3), torch.rand(300, 2), materials)
    expected = torch.tensor(colours, dtype=torch.float32)[materials.long()] / 255
    tolerance = dict(rtol=0, atol=1.1e-3)  # 0 and 255 are stored a quarter level inside (0, 1)
    torch.testing.assert_close(albedo, expected, **tolerance)
    torch.testing.assert_close(texture(None, torch.rand(5, 2)), expected.new_tensor([RED] * 5) / 255, **tolerance)
    with pytest.raises(ValueError, match="material indices"):
        texture(None, torch.rand(2, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="uvs"):
        texture(torch.zeros(2, 3), None)
    assert texture(None, torch.zeros(0, 2), torch.zeros(0, dtype=index_dtype)).shape == (0, 3)


def test_gradient_reaches_the_logits_of_the_sampled_material_only():
    texture = UVTexture(num_materials=2, size=8, init_color=(0.2, 0.4, 0.6))
    torch.testing.assert_close(texture.colors(), torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(2, 3, 8, 8))
    albedo = texture(None, torch.rand(50, 2), torch.ones(50, dtype=torch.int64))
    albedo.sum().backward()
    assert texture.logits.grad[1].abs().sum() > 0
    assert texture.logits.grad[0].abs().sum() == 0


# ----------------------------------------------------------------------------------------------------------------------
# query_texture
# ----------------------------------------------------------------------------------------------------------------------


def test_query_texture_in_chunks_matches_one_call_and_stays_differentiable():
    field = ImplicitTextureField(FieldConfig(num_levels=4, log2_hashmap_size=10, max_resolution=64, hidden_dim=16))
    points = torch.rand(1000, 3) * 2 - 1
    chunked = query_texture(field, points, chunk_size=300)
    torch.testing.assert_close(chunked, field(points))
    chunked.sum().backward()
    assert field.encoding.table.grad is not None and field.mlp[0].weight.grad is not None

    texture = UVTexture(2, 4)
    uvs, materials = torch.rand(1000, 2), torch.randint(0, 2, (1000,))
    with torch.no_grad():
        chunked = query_texture(texture, points, uvs, materials, chunk_size=128)
        torch.testing.assert_close(chunked, texture(points, uvs, materials))
    with pytest.raises(ValueError, match="needs uvs"):
        query_texture(texture, points)
