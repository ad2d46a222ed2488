"""Helpers shared by the benchmark scripts: timing, tables, JSON, procedural meshes."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from csdtex.mesh import Mesh


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(function: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``function`` in milliseconds (CUDA synchronized around each call)."""
    for _ in range(warmup):
        function()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def torus_with_uvs(num_faces: int, major_radius: float = 1.0, minor_radius: float = 0.4) -> Mesh:
    """A torus of about ``num_faces`` triangles with a single-chart UV layout (seams duplicated in UV space only).

    Vertices are shared across the seams (one vertex per grid point), so the geometry is closed while the UVs
    have seams, as in typical assets.
    """
    major = max(3, int(round(np.sqrt(num_faces))))
    minor = max(3, int(round(num_faces / (2 * major))))
    theta = 2 * np.pi * np.arange(major) / major
    phi = 2 * np.pi * np.arange(minor) / minor
    t, p = np.meshgrid(theta, phi, indexing="ij")
    radius = major_radius + minor_radius * np.cos(p)
    vertices = np.stack([radius * np.cos(t), minor_radius * np.sin(p), radius * np.sin(t)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(major), np.arange(minor), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)

    def vertex(a, b):
        return (a % major) * minor + (b % minor)

    def uv_index(a, b):
        return a * (minor + 1) + b

    faces = np.concatenate(
        [np.stack([vertex(i, j), vertex(i + 1, j), vertex(i + 1, j + 1)], -1),
         np.stack([vertex(i, j), vertex(i + 1, j + 1), vertex(i, j + 1)], -1)]
    )
    uv_faces = np.concatenate(
        [np.stack([uv_index(i, j), uv_index(i + 1, j), uv_index(i + 1, j + 1)], -1),
         np.stack([uv_index(i, j), uv_index(i + 1, j + 1), uv_index(i, j + 1)], -1)]
    )
    uu, vv = np.meshgrid(np.arange(major + 1) / major, np.arange(minor + 1) / minor, indexing="ij")
    margin = 0.01
    uvs = margin + (1 - 2 * margin) * np.stack([uu, vv], -1).reshape(-1, 2)
    return Mesh(vertices, faces[:, ::-1].copy(), uvs=uvs, uv_faces=uv_faces[:, ::-1].copy())


def environment() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        print("(nothing measured)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def write_json(path: str | Path, payload: dict) -> Path:
    from csdtex.fileio import write_text_atomic

    return write_text_atomic(path, json.dumps(payload, indent=2))


def run_or_merge(argv, *, script: str, default_name: str, run_benchmark, parse_args, merge_results):
    """Entry point shared by the benchmarks that run in parts: ``--merge A.json B.json ... [--out] [--name]`` calls
    ``merge_results(parts, out, name)``; anything else runs ``run_benchmark(parse_args(argv))``."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--merge":
        merger = argparse.ArgumentParser(prog=f"{script} --merge", description=merge_results.__doc__.split("\n")[0])
        merger.add_argument("parts", nargs="+", help=f"{default_name} JSON files of disjoint runs")
        merger.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
        merger.add_argument("--name", default=default_name)
        merged = merger.parse_args(argv[1:])
        return merge_results(merged.parts, merged.out, merged.name)
    return run_benchmark(parse_args(argv))


def stack_part_grids(records, out: Path, name: str) -> Path:
    """The grids of benchmark parts stacked top to bottom into ``<out>/<name>_grid.png`` (written atomically).

    ``records``: (JSON path, record) per part; each part's grid PNG is ``record["files"]["grid"]`` beside its JSON.
    Narrower grids are padded with white on the right.
    """
    from PIL import Image

    from csdtex.fileio import atomic_path

    grids = [Image.open(path.parent / record["files"]["grid"]).convert("RGB") for path, record in records]
    canvas = Image.new("RGB", (max(g.width for g in grids), sum(g.height for g in grids)), "white")
    y = 0
    for grid in grids:
        canvas.paste(grid, (0, y))
        y += grid.height
    out.mkdir(parents=True, exist_ok=True)
    grid_path = out / f"{name}_grid.png"
    with atomic_path(grid_path) as temporary:
        canvas.save(temporary, format="PNG")
    return grid_path
