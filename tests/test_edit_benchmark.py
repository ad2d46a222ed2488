"""benchmarks/edit.py (edit fidelity): the colour pairs, the locked region, and a CPU smoke run end to end with a tiny
random prior (structure only: the random prior's accuracies mean nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csdtex.tinyprior.vocabulary import COLORS, VOCABULARY, caption_words
from benchmark_scripts import load_benchmark



def _edit_benchmark():
    return load_benchmark("edit")


def test_pairs_cover_every_colour_once_as_source_and_once_as_target():
    bench = _edit_benchmark()
    first = bench.PAIRS[: bench.DEFAULT_PAIRS]
    assert len(first) >= 12 and len(set(bench.PAIRS)) == len(bench.PAIRS)
    assert sorted(a for a, _ in first) == sorted(COLORS) and sorted(b for _, b in first) == sorted(COLORS)
    assert all(a != b for a, b in bench.PAIRS)
    assert not {(b, a) for a, b in first} & set(first)  # no pair in both directions among the first 12
    assert bench.PAIRS[bench.DEFAULT_PAIRS:] == tuple((b, a) for a, b in first)
    assert bench.color_prompt("orange") == "an orange object" and bench.color_prompt("red") == "a red object"
    assert all(set(caption_words(bench.color_prompt(c))) <= set(VOCABULARY) for c in COLORS)


def test_locked_columns_hold_the_requested_share_of_covered_texels():
    bench = _edit_benchmark()
    covered = np.zeros((10, 20), dtype=bool)
    covered[:, 2:12] = True  # charts end at u = 0.6: "the rightmost 10% of the columns" would lock nothing
    k = bench.locked_columns(covered, 0.10)
    assert k == 9  # columns 11..19: column 11 holds the covered 10%
    assert covered[:, 20 - k:].sum() >= 0.10 * covered.sum() > covered[:, 20 - k + 1:].sum()
    before = [np.zeros((10, 20, 3), np.uint8)]
    after = [before[0].copy()]
    after[0][0, 19, 1] = 7
    after[0][0, 0] = 1  # editable: not counted
    locked = np.zeros((10, 20), dtype=bool)
    locked[:, 20 - k:] = True
    assert bench.changed_texels(before, after, locked) == 1


def test_edit_benchmark_smoke_runs_end_to_end(tmp_path):
    """1 mesh x 2 pairs: 2 paints + 2 CSD + 2 SDS edits of 2 steps on a tiny random pixel prior."""
    from csdtex.guidance.random_priors import build_tiny_pixel_folder

    bench = _edit_benchmark()
    prior = build_tiny_pixel_folder(tmp_path / "prior")
    out = tmp_path / "results"
    record = bench.main([
        "--model", str(prior), "--pairs", "2", "--meshes", "crate", "--steps", "2", "--views-per-step", "1",
        "--texture-size", "32", "--frames", "2", "--grid-views", "2", "--device", "cpu", "--out", str(out),
        "--variant", "short:steps=1;guidance.w2_end=0.5",
    ])
    data = json.loads((out / "edit.json").read_text())
    assert record["summary"] == data["summary"]
    assert data["settings"]["steps"] == 2 and data["settings"]["edit_steps"] == 2
    assert data["settings"]["meshes"] == ["crate"] and data["settings"]["methods"] == ["csd", "sds"]
    assert data["pairs"] == [list(p) for p in bench.PAIRS[:2]]

    runs = data["runs"]
    assert len(runs) == 10 and [r["method"] for r in runs] == ["start", "csd", "sds", "csd+short", "sds+short"] * 2
    assert data["settings"]["variants"] == {"short": ["steps=1", "guidance.w2_end=0.5"]}
    for run in (r for r in runs if r["method"] != "start"):
        assert run["steps"] == (1 if run["method"].endswith("+short") else 2)
        assert run["overrides"] == (["steps=1", "guidance.w2_end=0.5"] if "+" in run["method"] else [])
    for run in runs:
        assert run["mesh"] == "crate" and (run["color_a"], run["color_b"]) == bench.PAIRS[run["pair_index"]]
        assert set(run["probabilities"]["color_probs"]) == set(COLORS) and run["seconds"] > 0
        assert run["timings"]["optimize"] > 0 and isinstance(run["a_read"], bool)
        if run["method"] == "start":
            assert run["prompt"] == bench.color_prompt(run["color_a"])
        else:
            assert run["prompt"] == bench.color_prompt(run["color_b"])
            assert run["source"] == bench.color_prompt(run["color_a"])
            assert isinstance(run["b_read"], bool) and isinstance(run["start_a_read"], bool)
            assert isinstance(run["b_read_editable"], bool)  # the default mask locks texels: a second reading
            assert run["changed_outside"] == 0 and run["changed_outside_reported"] == 0
            assert run["fit_error_max"] == 0.0 and 0.0 <= run["changed_inside"] <= 1.0
    locked = data["locked_region"]["crate"]
    assert locked["texture_size"] == 32 and 1 <= locked["columns"] < 32
    assert 0.10 <= locked["locked_covered_fraction"] < 0.5

    summary = data["summary"]
    assert summary.keys() == {"start", "csd", "sds", "csd+short", "sds+short"}
    assert summary["start"]["n"] == 2 and 0.0 <= summary["start"]["a_read_rate"] <= 1.0
    for method in ("csd", "sds"):
        entry = summary[method]
        assert entry["n"] == 2 and 0.0 <= entry["b_read_rate"] <= 1.0 and 0.0 <= entry["b_read_rate_editable"] <= 1.0
        assert entry["changed_outside_total"] == 0 and entry["per_mesh"]["crate"]["n"] == 2
        assert set(entry["per_pair"]) == {bench.pair_label(p) for p in bench.PAIRS[:2]}
    assert data["targets_met"]["changed_outside==0"] is True
    assert set(data["targets_met"]) == {"csd_b_read_rate>=0.85", "changed_outside==0"}
    assert "B read, locked texels hidden" in data["markdown"]
    assert "| CSD edit A -> B | 2 |" in data["markdown"] and "| CSD+SHORT edit A -> B | 2 |" in data["markdown"]

    grid = np.asarray(Image.open(out / data["files"]["grid"]))
    rows = data["files"]["grid_rows"]
    assert rows == 2 and data["files"]["grid_columns"][0].startswith("start")
    tile = 128  # 64 px views at scale 2
    assert rows * tile <= grid.shape[0] < (rows + 1) * tile  # one row per (mesh, pair), plus the header
    assert grid.shape[1] >= 5 * 2 * tile


def test_edit_benchmark_without_a_mask(tmp_path):
    """--locked-fraction 0: the edits get no mask (everything editable), no texel is locked, no mask file is
    written."""
    from csdtex.guidance.random_priors import build_tiny_pixel_folder

    bench = _edit_benchmark()
    prior = build_tiny_pixel_folder(tmp_path / "prior")
    out, kept = tmp_path / "results", tmp_path / "kept"
    bench.main([
        "--model", str(prior), "--pairs", "1", "--meshes", "crate", "--steps", "1", "--views-per-step", "1",
        "--texture-size", "32", "--frames", "2", "--grid-views", "2", "--device", "cpu", "--out", str(out),
        "--methods", "csd", "--locked-fraction", "0", "--keep-outputs", str(kept),
    ])
    data = json.loads((out / "edit.json").read_text())
    assert data["settings"]["locked_fraction"] == 0.0
    assert data["locked_region"]["crate"] == {"columns": 0, "locked_texels": 0}
    assert list(kept.rglob("*.obj")) and not list(kept.rglob("mask.png"))
    edit_run = next(r for r in data["runs"] if r["method"] == "csd")
    assert edit_run["changed_outside"] == 0 and 0.0 <= edit_run["changed_inside"] <= 1.0
    assert edit_run["b_read_editable"] is None and data["summary"]["csd"]["b_read_rate_editable"] is None
    with pytest.raises(SystemExit):
        bench.parse_args(["--locked-fraction", "1"])


def test_merge_recomputes_the_summary_and_refuses_overlaps(tmp_path):
    bench = _edit_benchmark()

    def part(name: str, mesh: str, b_read: bool) -> Path:
        runs = [{"method": "start", "mesh": mesh, "pair_index": 0, "pair": "red->purple", "a_read": True,
                 "seconds": 1.0},
                {"method": "csd", "mesh": mesh, "pair_index": 0, "pair": "red->purple", "b_read": b_read,
                 "a_read": False, "start_a_read": True, "changed_outside": 0, "changed_outside_reported": 0,
                 "changed_inside": 0.9, "seconds": 2.0}]
        Image.new("RGB", (40, 10), "white").save(tmp_path / f"{name}_grid.png")
        record = {"settings": {"methods": ["csd"], "meshes": [mesh], "pairs": 1, "command": name},
                  "pairs": [["red", "purple"]],
                  "locked_region": {mesh: {"columns": 3}}, "targets": dict(bench.TARGETS), "runs": runs,
                  "files": {"grid": f"{name}_grid.png", "grid_rows": 1, "grid_columns": ["start: paint A"]},
                  "seconds": 3.0}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(record))
        return path

    a, b = part("a", "vase", True), part("b", "duck", False)
    merged = bench.main(["--merge", str(a), str(b), "--out", str(tmp_path / "merged"), "--name", "edit"])
    assert merged["summary"]["csd"]["b_read_rate"] == 0.5 and merged["summary"]["start"]["n"] == 2
    assert merged["settings"]["meshes"] == ["vase", "duck"] and merged["files"]["grid_rows"] == 2
    assert Image.open(tmp_path / "merged" / "edit_grid.png").size == (40, 20)
    with pytest.raises(SystemExit):
        bench.main(["--merge", str(a), str(a), "--out", str(tmp_path / "again")])


def test_bottom_locked_region_locks_the_lowest_covered_texels(tmp_path):
    """--locked-region bottom: about the requested share of covered texels, every locked texel's surface point lower
    than every editable covered texel's (world +Y), and the PNG matches the returned mask."""
    import torch

    from csdtex.bake import rasterize_uv_layout
    from csdtex.mesh import load_mesh
    from csdtex.render.fragments import interpolate

    bench = _edit_benchmark()
    vase = Path(__file__).resolve().parents[1] / "assets" / "meshes" / "vase.obj"  # has its own UVs
    mesh = load_mesh(vase).to_render(torch.device("cpu"))
    locked, record = bench.make_locked_mask(mesh, 64, 0.10, "torch", tmp_path / "mask.png", region="bottom")
    assert record["region"] == "bottom" and 0.09 <= record["locked_covered_fraction"] <= 0.2
    fragments = rasterize_uv_layout(mesh, 0, 64, backend="torch")
    covered = fragments.mask[0].numpy()
    heights = interpolate(mesh.positions[:, 1:2], mesh.faces, fragments)[0, ..., 0].numpy()
    assert not (locked & ~covered).any()
    assert heights[locked].max() <= heights[covered & ~locked].min()
    assert heights[locked].max() <= record["y_below"] + 1e-4
    png = np.asarray(Image.open(tmp_path / "mask.png"))
    assert np.array_equal(png == 0, locked)
    with pytest.raises(ValueError):
        bench.make_locked_mask(mesh, 64, 0.10, "torch", tmp_path / "x.png", region="top")


def test_hiding_locked_texels_whitens_only_them():
    bench = _edit_benchmark()
    texture = np.full((4, 4, 3), 10, dtype=np.uint8)
    other = np.full((8, 8, 3), 20, dtype=np.uint8)  # another material's texture: never locked here
    locked = np.zeros((4, 4), dtype=bool)
    locked[:, 3] = True
    hidden, untouched = bench.hide_locked_texels([texture, other], locked)
    assert (hidden[locked] == 255).all() and (hidden[~locked] == 10).all()
    assert (texture == 10).all() and untouched is other  # the inputs are not modified


def test_target_reads_the_editable_part_when_a_region_is_locked():
    """With a locked region the target is checked on the B read with the locked texels hidden (the locked part keeps
    colour A by design); without one on the plain B read. Both texel-count checks stay exact."""
    bench = _edit_benchmark()
    edits = [{"method": "csd", "changed_outside": 0, "changed_outside_reported": 0}]
    masked = {"csd": {"b_read_rate": 0.80, "b_read_rate_editable": 0.90}}
    unmasked = {"csd": {"b_read_rate": 0.80, "b_read_rate_editable": None}}
    assert bench.target_b_read_rate(masked["csd"]) == 0.90 and bench.target_b_read_rate(unmasked["csd"]) == 0.80
    assert bench.check_targets(masked, edits) == {"csd_b_read_rate>=0.85": True, "changed_outside==0": True}
    assert bench.check_targets(unmasked, edits)["csd_b_read_rate>=0.85"] is False
    masked_low = {"csd": {"b_read_rate": 0.95, "b_read_rate_editable": 0.80}}
    assert bench.check_targets(masked_low, edits)["csd_b_read_rate>=0.85"] is False
    assert bench.check_targets({}, [])["csd_b_read_rate>=0.85"] is None
    leaked = [{"method": "csd", "changed_outside": 1, "changed_outside_reported": 0}]
    assert bench.check_targets(masked, leaked)["changed_outside==0"] is False
