"""Fidelity benchmark (issue #4): does a painted texture show the colours and the pattern its prompt asks for?

For every prompt of :data:`PROMPTS` (36 prompts over the synthetic vocabulary: 6 patterns x 6 colour choices) on
every benchmark mesh (``assets/meshes`` vase, duck, crate: none of them is a mesh the prior or the classifier was
trained on; those use trimesh primitives, :data:`csdtex.tinyprior.vocabulary.SHAPES`; plus the irregular procedural
``proc:quadruped`` and ``proc:teapot`` of :data:`IRREGULAR_MESHES`, a shape family held out of every split of the
synthetic data, versions 1 and 2), and for every method:

- ``csd`` / ``sds``: :func:`csdtex.paint` with ``guidance_method`` = the method and otherwise identical
  settings (same steps, views per step, seed, texture size, prior loaded once);
- ``reference``: the ground-truth procedural texture of the prompt
  (:class:`csdtex.tinyprior.textures.ProceduralTexture`, nominal colours) drawn directly on the mesh, no prior
  involved: the classifier's ceiling on these meshes;

the result is rendered as a turntable (:func:`csdtex.preview.turntable_frames`: ``--frames`` views at 64x64, albedo
shading over white by default (``--shading``, ``--background``), elevation 15 degrees; the painted textures through
their baked UV texture, i.e. exactly what is exported), classified with the shipped attribute classifier
(:func:`csdtex.tinyprior.attributes.classify_views`, probabilities averaged over the views) and scored: colour correct
when the k most probable colours are exactly the prompt's k colours (order ignored), pattern correct when the most
probable pattern is the prompt's (see :mod:`csdtex.tinyprior.attributes`).

Outputs (in ``--out``, default ``benchmarks/results``): ``fidelity.json`` (settings, per-method accuracies overall /
per mesh / per pattern, the targets and whether they are met, every run with its predictions and timings) and
``fidelity_grid.png`` (one row per prompt x mesh; per method ``--grid-views`` turntable views; under each cell a bar,
left half = colour, right half = pattern, green = correct, red = wrong). The table is printed with the targets of
issue #4: CSD colour accuracy >= 80%, pattern accuracy >= 60%, and CSD not below SDS on either.

Classifier ceiling (``--methods reference --meshes vase,knot,crate,duck``): colour 100% on all four meshes; pattern
vase 89%, knot 53%, crate 100%, duck 100%. On the self-occluding torus knot, holes over the white background read as
dots and 3D stripes as a checkerboard, so the knot (shipped for the unwrap path) was replaced by the duck here; the
classifier, not the painting, would have capped its pattern score.

Examples::

    # the full benchmark (36 prompts x 5 meshes x {csd, sds, reference}) with the built-in prior, on a GPU
    python benchmarks/fidelity.py --device cuda --steps 300
    # how well the classifier reads ground-truth textures on the benchmark meshes (no prior needed)
    python benchmarks/fidelity.py --methods reference
    # CPU smoke test with a tiny random prior (accuracy meaningless)
    python -c "from csdtex.guidance.random_priors import build_tiny_pixel_folder as b; b('out/tiny_random')"
    python benchmarks/fidelity.py --model out/tiny_random --prompts 2 --meshes crate --steps 3 --out out/fidelity_smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also when loaded by path

from csdtex.fileio import atomic_path, write_text_atomic  # noqa: E402
from csdtex.tinyprior import attributes  # noqa: E402
from csdtex.tinyprior.textures import ProceduralTexture, TextureSpec, random_texture_spec  # noqa: E402
from csdtex.tinyprior.vocabulary import GENERIC_NOUN  # noqa: E402

DEFAULT_MODEL = ROOT / "assets" / "priors" / "tiny"
"""The built-in prior's folder in a checkout (the default ``--model`` when it exists)."""

MESH_DIR = ROOT / "assets" / "meshes"
BENCHMARK_MESHES: tuple[str, ...] = ("vase", "duck", "crate")
"""Mesh names (``assets/meshes/<name>.obj``): none is one of the synthetic training shapes."""

IRREGULAR_MESHES: tuple[str, ...] = ("proc:quadruped", "proc:teapot")
"""Procedural irregular meshes (thin legs, handle, spout) of a family that no synthetic-data split contains
(:func:`csdtex.tinyprior.shapes_v2.held_out_mesh`; issue #15); reported under the names ``quadruped`` and
``teapot``. The default ``--meshes`` is :data:`BENCHMARK_MESHES` + these."""

METHODS: tuple[str, ...] = ("csd", "sds", "reference")
TARGETS: dict[str, float] = {"csd_color_accuracy": 0.80, "csd_pattern_accuracy": 0.60}
"""Issue #4's targets; in addition CSD must not be below SDS on either accuracy."""


@dataclass(frozen=True)
class BenchmarkPrompt:
    """One prompt of the benchmark: a pattern and its colours (first = base / top / first stripe colour)."""

    pattern: str
    colors: tuple[str, ...]

    def text(self, noun: str = GENERIC_NOUN) -> str:
        """The prompt on an object called ``noun``, phrased with the short caption template of
        :meth:`csdtex.tinyprior.textures.TextureSpec.caption` (e.g. ``"a red and white striped object"``); any noun
        works (``"a blue and yellow checkered vase"``)."""
        text = TextureSpec(self.pattern, self.colors).caption(GENERIC_NOUN, template=0)
        if noun == GENERIC_NOUN:
            return text
        article = "an" if noun[:1] in "aeiou" else "a"
        text = re.sub(rf"^an? {GENERIC_NOUN}\b", f"{article} {noun}", text)
        return re.sub(rf"\b{GENERIC_NOUN}\b", noun, text)


_CHOICES: dict[str, tuple[tuple[str, ...], ...]] = {
    "solid": (("red",), ("green",), ("gray",), ("yellow",), ("black",), ("cyan",)),
    "stripes": (("red", "white"), ("blue", "yellow"), ("black", "orange"), ("green", "pink"), ("purple", "cyan"),
                ("brown", "gray")),
    "checkerboard": (("black", "white"), ("red", "blue"), ("green", "yellow"), ("orange", "purple"),
                     ("pink", "cyan"), ("gray", "brown")),
    "dots": (("blue", "white"), ("yellow", "black"), ("red", "green"), ("pink", "purple"), ("cyan", "orange"),
             ("gray", "blue")),
    "gradient": (("red", "yellow"), ("blue", "green"), ("purple", "orange"), ("black", "cyan"), ("pink", "white"),
                 ("green", "brown")),
    "halves": (("red", "blue"), ("yellow", "purple"), ("white", "black"), ("orange", "gray"), ("cyan", "brown"),
               ("brown", "pink")),
}
PROMPTS: tuple[BenchmarkPrompt, ...] = tuple(
    BenchmarkPrompt(pattern, _CHOICES[pattern][i]) for i in range(6) for pattern in _CHOICES
)
"""The 36 benchmark prompts, interleaved by pattern (so any prefix covers the patterns evenly). Every colour appears
5 or 6 times (66 colour slots). No solid white (invisible over the white background of the benchmark renders) and
no solid purple (a combination held out of the prior's training data,
:data:`csdtex.tinyprior.synthetic.HELD_OUT_COMBOS`)."""


# ======================================================================================================================
# Rendering and classification
# ======================================================================================================================


def render_turntable(render_mesh, texture_model, frames: int, device: torch.device, backend: str,
                     background: Sequence[float] = (1.0, 1.0, 1.0), shading: str = "albedo") -> np.ndarray:
    """Turntable views for the classifier: uint8 [frames, 64, 64, 3] over ``background`` (RGB in [0, 1]) with
    ``shading`` ('albedo' or 'lit'), elevation 15 deg, azimuths evenly spaced from the front, no supersampling (like
    the classifier's training renders)."""
    from csdtex.preview import turntable_frames

    return turntable_frames(render_mesh, texture_model, num_frames=frames, resolution=attributes.INPUT_SIZE,
                            shading=shading, background=torch.tensor(background, device=device), backend=backend,
                            supersample=1)


def reference_texture(prompt: BenchmarkPrompt, render_mesh, seed: int = 0) -> ProceduralTexture:
    """The ground-truth procedural texture of ``prompt`` for ``render_mesh`` (nominal colours, no jitter; pattern
    parameters drawn from ``seed``; gradient / halves span the mesh's vertical extent)."""
    y = render_mesh.positions[:, 1]
    y_range = (float(y.min()), float(y.max()))
    spec = random_texture_spec(np.random.default_rng(seed), pattern=prompt.pattern, colors=prompt.colors,
                               y_range=y_range, color_jitter=0.0)
    return ProceduralTexture(spec).to(render_mesh.positions.device)


def benchmark_mesh_path(name_or_path: str) -> Path:
    """The file of a benchmark mesh given by name (``vase``, ``duck``, ``crate``, ``knot`` in ``assets/meshes``) or
    path; its stem is the mesh's name in the results."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MESH_DIR / f"{name_or_path}.obj"
    if not path.exists():
        raise SystemExit(f"mesh {name_or_path} not found (tried {path})")
    return path


def benchmark_mesh_name(name_or_path: str) -> str:
    """The name of a benchmark mesh in the results: ``proc:NAME`` -> ``NAME``, a file -> its stem."""
    if name_or_path.startswith("proc:"):
        return name_or_path.removeprefix("proc:")
    return benchmark_mesh_path(name_or_path).stem


def load_benchmark_mesh(name_or_path: str):
    """A benchmark mesh by name or path (see :func:`benchmark_mesh_path`), or a held-out procedural mesh
    ``proc:quadruped`` / ``proc:teapot`` (:func:`csdtex.tinyprior.shapes_v2.held_out_mesh`): (name, Mesh)."""
    from csdtex.mesh import load_mesh

    if name_or_path.startswith("proc:"):
        from csdtex.tinyprior.shapes_v2 import held_out_mesh

        try:
            return benchmark_mesh_name(name_or_path), held_out_mesh(name_or_path).to_mesh()
        except ValueError as error:
            raise SystemExit(str(error)) from None
    path = benchmark_mesh_path(name_or_path)
    return path.stem, load_mesh(path)


# ======================================================================================================================
# The benchmark
# ======================================================================================================================


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None,
                   help=f"prior (alias, folder or hub id); default {DEFAULT_MODEL.relative_to(ROOT)} when it exists")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of csd,sds,reference")
    p.add_argument("--steps", type=int, default=300, help="paint steps, the same for every method")
    p.add_argument("--views-per-step", type=int, default=4)
    p.add_argument("--texture-size", type=int, default=None,
                   help="baked texture size (default: the prior's preset, 512 for the built-in prior)")
    p.add_argument("--prompts", type=int, default=len(PROMPTS), help="use the first N prompts (smoke tests)")
    p.add_argument("--meshes", default=",".join(BENCHMARK_MESHES + IRREGULAR_MESHES),
                   help="comma-separated mesh names (assets/meshes stems or proc:quadruped / proc:teapot) or paths")
    p.add_argument("--noun", choices=("object", "mesh"), default="object",
                   help="prompt noun: 'object' (in the built-in prior's vocabulary) or the mesh's name (vase, ...)")
    p.add_argument("--frames", type=int, default=8, help="turntable views classified per result")
    p.add_argument("--grid-views", type=int, default=4, help="views per method in the PNG grid")
    p.add_argument("--background", default="1,1,1", help="RGB in [0, 1] behind the classified views")
    p.add_argument("--shading", choices=("albedo", "lit"), default="albedo", help="shading of the classified views")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier", default=None, help="attribute classifier weights (default: the shipped one)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for fidelity.json / _grid.png")
    p.add_argument("--name", default="fidelity", help="stem of the output files")
    p.add_argument("--lr", type=float, default=None, help="paint learning rate (default: the prior's preset)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the work (each loads the prior; e.g. 8 on a 16-core GPU machine)")
    p.add_argument("--keep-paint-outputs", default=None,
                   help="folder to keep every paint run's outputs in (default: a temporary folder, deleted)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.background = tuple(float(v) for v in args.background.split(","))
    except ValueError:
        args.background = ()
    if len(args.background) != 3 or not all(0.0 <= v <= 1.0 for v in args.background):
        p.error("--background must be three numbers in [0, 1], e.g. 1,1,1")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - set(METHODS)
    if unknown or not args.methods:
        p.error(f"--methods: choose from {METHODS}, got {args.methods}")
    if not 1 <= args.prompts <= len(PROMPTS):
        p.error(f"--prompts must be in 1..{len(PROMPTS)}")
    if args.frames < 1 or not 1 <= args.grid_views <= args.frames:
        p.error("--frames must be at least 1 and --grid-views in 1..--frames")
    if args.model is None and {"csd", "sds"} & set(args.methods):
        if not DEFAULT_MODEL.exists():
            p.error(f"--model is required ({DEFAULT_MODEL.relative_to(ROOT)} does not exist yet)")
        args.model = str(DEFAULT_MODEL)
    return args


def _block(runs: list[dict]) -> dict[str, Any]:
    """Accuracies (fractions in [0, 1], None when ``runs`` is empty) of a set of scored runs."""
    if not runs:
        return {"n": 0, "color_accuracy": None, "pattern_accuracy": None, "both_accuracy": None}
    return {"n": len(runs), "color_accuracy": float(np.mean([r["color_correct"] for r in runs])),
            "pattern_accuracy": float(np.mean([r["pattern_correct"] for r in runs])),
            "both_accuracy": float(np.mean([r["color_correct"] and r["pattern_correct"] for r in runs]))}


def summarize(runs: list[dict], methods: Sequence[str]) -> dict[str, Any]:
    """Per-method accuracies: ``{method: {n, color_accuracy, pattern_accuracy, both_accuracy, per_mesh: {mesh:
    {...}}, per_pattern: {pattern: {...}}, seconds_per_run}}`` (accuracies are fractions in [0, 1])."""
    summary: dict[str, Any] = {}
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        entry = _block(mine)
        entry["per_mesh"] = {m: _block([r for r in mine if r["mesh"] == m])
                             for m in dict.fromkeys(r["mesh"] for r in mine)}
        entry["per_pattern"] = {p: _block([r for r in mine if r["pattern"] == p])
                                for p in dict.fromkeys(r["pattern"] for r in mine)}
        entry["seconds_per_run"] = float(np.mean([r["seconds"] for r in mine])) if mine else None
        summary[method] = entry
    return summary


def check_targets(summary: dict[str, Any]) -> dict[str, bool | None]:
    """Issue #4's targets: CSD colour >= 0.80, CSD pattern >= 0.60, CSD >= SDS on both (None when not measured)."""
    csd, sds = summary.get("csd"), summary.get("sds")
    result: dict[str, bool | None] = {
        "csd_color_accuracy>=0.80": None if csd is None else csd["color_accuracy"] >= TARGETS["csd_color_accuracy"],
        "csd_pattern_accuracy>=0.60":
            None if csd is None else csd["pattern_accuracy"] >= TARGETS["csd_pattern_accuracy"],
        "csd_color>=sds_color": None,
        "csd_pattern>=sds_pattern": None,
    }
    if csd is not None and sds is not None:
        result["csd_color>=sds_color"] = csd["color_accuracy"] >= sds["color_accuracy"]
        result["csd_pattern>=sds_pattern"] = csd["pattern_accuracy"] >= sds["pattern_accuracy"]
    return result


def format_table(summary: dict[str, Any], targets: dict[str, bool | None]) -> str:
    """The printed report: one row per method (accuracies in %), then each target with PASS / FAIL / n/a."""
    lines = [f"{'method':<10} {'n':>4} {'color':>7} {'pattern':>8} {'both':>6} {'s/run':>7}"]
    for method, s in summary.items():
        lines.append(f"{method:<10} {s['n']:>4} {100 * s['color_accuracy']:>6.1f}% {100 * s['pattern_accuracy']:>7.1f}%"
                     f" {100 * s['both_accuracy']:>5.1f}% {s['seconds_per_run']:>7.2f}")
    csd, sds = summary.get("csd"), summary.get("sds")

    def value(entry: dict | None, key: str) -> str:
        return "not run" if entry is None else f"{100 * entry[key]:.1f}%"

    verdict = {name: "n/a" if ok is None else "PASS" if ok else "FAIL" for name, ok in targets.items()}
    lines.append("targets (issue #4):")
    lines.append(f"  CSD colour accuracy  {value(csd, 'color_accuracy'):>8}  target >= 80%        "
                 f"{verdict['csd_color_accuracy>=0.80']}")
    lines.append(f"  CSD pattern accuracy {value(csd, 'pattern_accuracy'):>8}  target >= 60%        "
                 f"{verdict['csd_pattern_accuracy>=0.60']}")
    lines.append(f"  SDS colour accuracy  {value(sds, 'color_accuracy'):>8}  target CSD >= SDS    "
                 f"{verdict['csd_color>=sds_color']}")
    lines.append(f"  SDS pattern accuracy {value(sds, 'pattern_accuracy'):>8}  target CSD >= SDS    "
                 f"{verdict['csd_pattern>=sds_pattern']}")
    if "reference" in summary:
        lines.append("(reference = ground-truth procedural texture on the same mesh: the classifier's ceiling)")
    return "\n".join(lines)


def write_grid(path: Path, rows: list[dict[str, Any]], methods: Sequence[str], views: int, scale: int = 2) -> Path:
    """Write the PNG grid: one row per (prompt, mesh), a label column, then ``views`` frames per method.

    Args:
        path: PNG to write (atomically).
        rows: dicts with ``label`` (str) and per method ``frames`` (uint8 [V, 64, 64, 3], V >= views) and
            ``color_correct`` / ``pattern_correct`` (bools), keyed by method name.
        methods: column order.
        views: frames shown per method (evenly spaced over the turntable).
        scale: nearest-neighbour upscaling of each frame.
    """
    from PIL import Image, ImageDraw

    tile, bar, gap, label_width, header = 64 * scale, 4, 6, 300, 18
    width = label_width + len(methods) * (views * tile + gap)
    height = header + len(rows) * (tile + bar + 2)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for m, method in enumerate(methods):
        draw.text((label_width + m * (views * tile + gap) + 4, 3), method, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        top = header + r * (tile + bar + 2)
        words, line, lines = row["label"].split(), "", []
        for word in words:  # wrap the label to the label column
            if len(line) + len(word) + 1 > 44:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        draw.multiline_text((4, top + 4), "\n".join(lines), fill=(0, 0, 0))
        for m, method in enumerate(methods):
            entry = row.get(method)
            if entry is None:
                continue
            left = label_width + m * (views * tile + gap)
            frames = entry["frames"]
            pick = np.linspace(0, len(frames), views, endpoint=False).astype(int)
            for v, index in enumerate(pick):
                image = Image.fromarray(frames[index]).resize((tile, tile), Image.NEAREST)
                canvas.paste(image, (left + v * tile, top))
            half = views * tile // 2
            for k, ok in enumerate((entry["color_correct"], entry["pattern_correct"])):
                color = (40, 170, 60) if ok else (210, 40, 40)
                box = [left + k * half, top + tile + 1, left + (k + 1) * half - 2, top + tile + bar]
                draw.rectangle(box, fill=color)
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")
    return path


_WORKER: dict[str, Any] = {}
"""Per-process state of the benchmark (prior, classifier, meshes, settings), set by :func:`_setup`."""


def _setup(args: argparse.Namespace, work: str) -> None:
    """Load what every evaluation needs into :data:`_WORKER` (once per process)."""
    from csdtex.devices import resolve_device
    from csdtex.mesh import unwrap_uvs
    from csdtex.render import resolve_backend

    if args.workers > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // args.workers))
    device = resolve_device(args.device)
    # Unwrap meshes without UVs (the duck) once here rather than in every paint run (a no-op for the others).
    meshes = [(name, unwrap_uvs(mesh, args.texture_size or 512))
              for name, mesh in (load_benchmark_mesh(m.strip()) for m in args.meshes.split(",") if m.strip())]
    prior = None
    if {"csd", "sds"} & set(args.methods):
        from csdtex.guidance import load_prior

        prior = load_prior(args.model, device)
    _WORKER.update(args=args, device=device, backend=resolve_backend("auto", device), meshes=meshes, prior=prior,
                   classifier=attributes.load_classifier(args.classifier, "cpu"), work=Path(work))  # fmt: skip


def _evaluate(job: tuple[int, int]) -> tuple[int, int, list[dict], dict[str, Any]]:
    """Paint / classify one (mesh index, prompt index) with every method; returns (mesh, prompt, runs, grid row)."""
    from csdtex.config import PaintConfig
    from csdtex.field import UVTexture
    from csdtex.painting import paint

    mesh_index, p_index = job
    w = _WORKER
    args, device = w["args"], w["device"]
    mesh_name, mesh = w["meshes"][mesh_index]
    render_mesh = mesh.to_render(device)
    prompt = PROMPTS[p_index]
    text = prompt.text(mesh_name if args.noun == "mesh" else GENERIC_NOUN)
    row: dict[str, Any] = {"label": f"{mesh_name}: {text}"}
    runs: list[dict] = []
    for method in args.methods:
        run_start = time.perf_counter()
        if method == "reference":
            model, target = reference_texture(prompt, render_mesh, args.seed + p_index), render_mesh
        else:
            config = PaintConfig(
                model=str(args.model), guidance_method=method, steps=args.steps, views_per_step=args.views_per_step,
                texture_size=args.texture_size, seed=args.seed, device=str(device), checkpoint_every=0,
                preview_frames=2, preview_size=64, learning_rate=args.lr,
            )  # fmt: skip
            result = paint(mesh, text, config, w["work"] / method / mesh_name / f"p{p_index:02d}",
                           show_progress=False, prior=w["prior"], warn=lambda message: None)  # fmt: skip
            model = UVTexture.from_images(result.textures).to(device)
            target = result.mesh.to_render(device)
        frames = render_turntable(target, model, args.frames, device, w["backend"], args.background, args.shading)
        prediction = attributes.classify_views(frames, w["classifier"])
        score = prediction.score(prompt.colors, prompt.pattern)
        seconds = time.perf_counter() - run_start
        runs.append({"method": method, "mesh": mesh_name, "prompt_index": p_index, "prompt": text,
                     "pattern": prompt.pattern, "colors": list(prompt.colors), **score,
                     "probabilities": prediction.to_dict(), "seconds": round(seconds, 3)})  # fmt: skip
        row[method] = {"frames": frames, **score}
    return mesh_index, p_index, runs, row


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by parsed ``args`` (see :func:`parse_args`); write the JSON and the PNG grid.

    With ``args.workers > 1`` the (mesh, prompt) pairs are spread over that many processes (each loads the prior
    once); results do not depend on the number of workers.

    Returns:
        The JSON-ready record written to ``<out>/<name>.json`` (keys ``settings``, ``targets``, ``summary``,
        ``targets_met``, ``runs``, ``files``, ``seconds``).
    """
    start = time.perf_counter()
    out = Path(args.out)
    keep = Path(args.keep_paint_outputs) if args.keep_paint_outputs else None
    temporary = None if keep else tempfile.TemporaryDirectory(prefix="csdtex_fidelity_")
    work = str(keep if keep else temporary.name)
    mesh_names = [benchmark_mesh_name(m.strip()) for m in args.meshes.split(",") if m.strip()]
    jobs = [(m, p) for m in range(len(mesh_names)) for p in range(args.prompts)]
    results: dict[tuple[int, int], tuple[list[dict], dict[str, Any]]] = {}
    total = len(jobs) * len(args.methods)

    def report(runs: list[dict]) -> None:
        done = sum(len(r) for r, _ in results.values()) - len(runs)
        for k, run in enumerate(runs):
            print(f"[{done + k + 1}/{total}] {run['method']:<9} {run['mesh']:<6} "
                  f"{run['prompt']!r}: colours {'ok ' if run['color_correct'] else 'NO '}{run['predicted_colors']},"
                  f" pattern {'ok ' if run['pattern_correct'] else 'NO '}{run['predicted_pattern']}"
                  f" ({run['seconds']:.1f} s)", flush=True)  # fmt: skip

    try:
        if args.workers > 1:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with context.Pool(args.workers, initializer=_setup, initargs=(args, work)) as pool:
                for mesh_index, p_index, runs, row in pool.imap_unordered(_evaluate, jobs):
                    results[(mesh_index, p_index)] = (runs, row)
                    report(runs)
        else:
            _setup(args, work)
            for job in jobs:
                mesh_index, p_index, runs, row = _evaluate(job)
                results[(mesh_index, p_index)] = (runs, row)
                report(runs)
    finally:
        if temporary is not None:
            temporary.cleanup()
    runs = [run for job in jobs for run in results[job][0]]
    grid_rows = [results[job][1] for job in jobs]
    device = _WORKER.get("device") or args.device
    backend = _WORKER.get("backend") or "auto (in workers)"
    prompts = PROMPTS[: args.prompts]

    summary = summarize(runs, args.methods)
    targets = check_targets(summary)
    grid_path = write_grid(out / f"{args.name}_grid.png", grid_rows, args.methods, args.grid_views)
    record = {
        "settings": {
            "command": "python benchmarks/fidelity.py" + "".join(f" {shlex.quote(a)}" for a in args.argv),
            "model": args.model, "methods": args.methods, "learning_rate": args.lr, "workers": args.workers,
            "steps": args.steps, "views_per_step": args.views_per_step,
            "texture_size": args.texture_size or "prior preset (512 for the built-in prior)",
            "prompts": len(prompts), "meshes": mesh_names, "noun": args.noun, "frames": args.frames,
            "seed": args.seed, "device": str(device), "renderer": backend,
            "classifier": str(args.classifier or attributes.default_weights_path().relative_to(ROOT)),
            "scoring": "colour: top-k sigmoid colours == prompt's colour set (k = its size); pattern: argmax",
            "render": f"turntable, {args.frames} views, 64x64, elevation 15 deg, distance 2.6, fov 50",
            "background": list(args.background), "shading": args.shading,
            "python": platform.python_version(), "torch": torch.__version__,
        },
        "targets": {**TARGETS, "csd_not_below_sds": True},
        "summary": summary,
        "targets_met": targets,
        "runs": runs,
        "files": {"grid": grid_path.name},
        "seconds": round(time.perf_counter() - start, 1),
    }
    json_path = write_text_atomic(out / f"{args.name}.json", json.dumps(record, indent=2) + "\n")
    print(format_table(summary, targets))
    print(f"wrote {json_path} and {grid_path} ({record['seconds']} s)")
    return record


def merge_results(parts: Sequence[str | Path], out: str | Path, name: str) -> dict[str, Any]:
    """Merge benchmark records run on disjoint mesh / prompt subsets (e.g. on two machines, or in two calls) into
    one: runs concatenated, summary and targets recomputed, grids stacked vertically (each part's grid is read from
    beside its JSON). Settings are the first part's, with every part's command, meshes and seconds listed.

    Returns:
        The merged record, also written to ``<out>/<name>.json`` with ``<out>/<name>_grid.png``.
    """
    from common import stack_part_grids

    records = [(Path(part), json.loads(Path(part).read_text())) for part in parts]
    keys = {(r["method"], r["mesh"], r["prompt_index"]) for _, record in records for r in record["runs"]}
    runs = [r for _, record in records for r in record["runs"]]
    if len(keys) != len(runs):
        raise SystemExit("the parts overlap: the same (method, mesh, prompt) was run twice")
    methods = list(dict.fromkeys(m for _, record in records for m in record["settings"]["methods"]))
    summary = summarize(runs, methods)
    targets = check_targets(summary)
    grid_path = stack_part_grids(records, Path(out), name)
    out = Path(out)
    settings = dict(records[0][1]["settings"])
    settings["meshes"] = list(dict.fromkeys(m for _, record in records for m in record["settings"]["meshes"]))
    settings["parts"] = [{"json": path.name, "command": record["settings"]["command"],
                          "meshes": record["settings"]["meshes"], "seconds": record["seconds"]}
                         for path, record in records]  # fmt: skip
    record = {"settings": settings, "targets": records[0][1]["targets"], "summary": summary,
              "targets_met": targets, "runs": runs, "files": {"grid": grid_path.name},
              "seconds": round(sum(r["seconds"] for _, r in records), 1)}  # fmt: skip
    json_path = write_text_atomic(out / f"{name}.json", json.dumps(record, indent=2) + "\n")
    print(format_table(summary, targets))
    print(f"wrote {json_path} and {grid_path}")
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point: parse ``argv`` and run :func:`run_benchmark`; or, with ``--merge A.json B.json
    ...``, merge finished parts (:func:`merge_results`) into ``--out``/``--name``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also when loaded by path
    from common import run_or_merge

    return run_or_merge(argv, script="fidelity.py", default_name="fidelity", run_benchmark=run_benchmark,
                        parse_args=parse_args, merge_results=merge_results)


if __name__ == "__main__":
    main()
