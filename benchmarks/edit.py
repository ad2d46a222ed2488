"""Edit-fidelity benchmark: paint colour A, edit to colour B; is B read afterwards, and did the locked texels stay put?

Protocol, for every benchmark mesh (``--meshes``, default the fidelity benchmark's vase, duck, crate:
:data:`fidelity.BENCHMARK_MESHES`) and every colour pair (A, B) of :data:`PAIRS` (the first ``--pairs``, default 12):

1. **Start**: :func:`csdtex.paint` the mesh with ``"a {A} object"`` (CSD, ``--steps`` steps, ``--views-per-step``,
   ``--seed``; the prior is loaded once per process). This one painted asset (its exported OBJ + PNG) is the start of
   every edit of the pair.
2. **Mask**: a UV mask (a PNG at the texture's size, white = editable) locks the rightmost texture columns that hold
   ``--locked-fraction`` (default 10%) of the texels the mesh's UV charts cover, so every edit has a known region
   that must not change while the classifier still sees mostly edited surface. (A fixed "rightmost 10% of the
   columns" would lock nothing on the duck, whose xatlas charts end at u = 0.90.) The columns chosen per mesh are in
   the JSON (``locked_region``). ``--locked-fraction 0`` edits without a mask (the whole texture is editable), which
   tells how much of a B-read failure is the locked strip itself: on the duck it is part of the head, seen in most
   views. ``--locked-region bottom`` locks the same share of covered texels at the lowest surface points (world +Y)
   instead: a region that must not change but that the turntable hardly sees.
3. **Edits**: :func:`csdtex.edit` from the start to ``"a {B} object"`` with source ``"a {A} object"`` and that mask,
   once per ``--methods`` entry, with otherwise identical settings (``--edit-steps``, default ``--steps``; same views
   per step and seed): ``csd`` = CSD with the source as negative prompt (what ``csdtex edit`` does); ``sds`` = SDS on
   the target prompt from the same start (SDS ignores the negative prompt).
4. **Scoring**: the start and each edit are rendered as a turntable exactly as ``benchmarks/fidelity.py`` does
   (:func:`fidelity.render_turntable`: ``--frames`` views at 64x64, albedo over white, elevation 15 degrees, the
   baked UV texture, i.e. what is exported) and classified with the shipped attribute classifier
   (:func:`csdtex.tinyprior.attributes.classify_views`, per-view sigmoid probabilities averaged over the views).
   **Colour read** = the most probable colour is the asked one, i.e. fidelity's colour rule with k = 1
   (``attributes.colors_correct(probs, [colour])``): "B read" for an edit, "A read" for its start. An edit whose
   start did not read A is still counted, and flagged (``start_a_read: false``); the summary also gives the B-read
   rate over the edits from good starts. With a mask each edit is also read with its locked texels hidden (set to
   the white background, :func:`hide_locked_texels`): **B read, locked texels hidden** (``b_read_editable``) asks
   whether the region the user asked to edit reads B, apart from the locked region's A that the turntable may show
   (the vase's foot with ``--locked-region bottom``). The target is on this read when a region is locked (on the
   plain B read, the same thing, when nothing is), since a locked region keeps colour A by design; the plain read is
   reported beside it (the target was on the plain read until session 9). **Changed outside** =
   texels of the locked region whose bytes differ between the start's texture PNG and the edited texture, counted by
   this script (must be 0; ``csdtex.edit``'s own ``changed_outside`` metric is recorded beside it).

Colour pairs (:data:`PAIRS`): the 12 colours of :data:`csdtex.tinyprior.vocabulary.COLORS` in their order
(red, orange, yellow, green, blue, purple, pink, brown, black, white, gray, cyan); pair i = (colour i, colour
i + 5 mod 12). Since 5 and 12 are coprime this is one 12-cycle: every colour is A once and B once, A != B, no pair
appears in both directions. It is a fixed rule, not a pick: near pairs stay in (orange -> pink, brown -> red,
cyan -> blue) next to far ones (green -> black, blue -> white). Pairs 13..24 (``--pairs 24``) are the same pairs
reversed. Solid purple is a combination held out of the built-in prior's training data
(:data:`csdtex.tinyprior.synthetic.HELD_OUT_COMBOS`), so red -> purple and purple -> gray are flagged ``held_out``
(counted like the others). The shipped classifier reads all 12 solid colours (white too, over the white
background) as the top colour of the reference textures on all three meshes.

Target (issue): B read in at least 85% of the CSD edits, and 0 texels changed outside the mask in every edit.

Outputs (in ``--out``, default ``benchmarks/results``): ``<name>.json`` (default ``edit.json``: settings, pairs,
locked region per mesh, per-method B-read rate overall / per mesh / per pair, A still read, outside-mask changes,
A-read rate of the starts, every run with its predictions, metrics and timings, targets and whether they are met, a
Markdown table for ``benchmarks/README.md``) and ``<name>_grid.png`` (one row per mesh x pair; columns: the painted
start, then each edit method, ``--grid-views`` turntable views each; under each cell a bar, green = the asked colour
is read (A for the start, B for an edit), red = not). The table is printed at the end.

Examples::

    # the full benchmark (3 meshes x 12 pairs: 36 paints + 72 edits) with the built-in prior on a GPU
    python benchmarks/edit.py --device cuda --workers 8
    # CPU smoke test with a tiny random prior (accuracies meaningless, structure only)
    python -c "from csdtex.guidance.random_priors import build_tiny_pixel_folder as b; b('out/tiny_random')"
    python benchmarks/edit.py --model out/tiny_random --pairs 2 --meshes crate --steps 2 --texture-size 32 \\
        --device cpu --out out/edit_smoke
    # parts run separately (e.g. one mesh per call), merged into edit.json / edit_grid.png
    python benchmarks/edit.py --device cuda --workers 8 --meshes vase --name edit_vase
    python benchmarks/edit.py --merge benchmarks/results/edit_vase.json benchmarks/results/edit_duck.json ...
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fidelity  # noqa: E402  (benchmarks/fidelity.py: meshes, turntable, grid, per-process setup)

from csdtex.fileio import write_text_atomic  # noqa: E402
from csdtex.tinyprior import attributes  # noqa: E402
from csdtex.tinyprior.vocabulary import COLORS, GENERIC_NOUN  # noqa: E402

ROOT = fidelity.ROOT
DEFAULT_MODEL = fidelity.DEFAULT_MODEL

_ORDER: tuple[str, ...] = tuple(COLORS)
PAIR_STEP = 5
"""Pair i is (colour i, colour i + PAIR_STEP mod 12); PAIR_STEP coprime with 12 makes the pairs one 12-cycle."""
_FORWARD = tuple((_ORDER[i], _ORDER[(i + PAIR_STEP) % len(_ORDER)]) for i in range(len(_ORDER)))
PAIRS: tuple[tuple[str, str], ...] = _FORWARD + tuple((b, a) for a, b in _FORWARD)
"""The (A, B) colour pairs: 12 forward pairs (each colour once as A and once as B), then the same 12 reversed."""
DEFAULT_PAIRS = len(_FORWARD)

EDIT_METHODS: tuple[str, ...] = ("csd", "sds")
PAINT_METHOD = "csd"
"""Guidance of the painted starts (shared by every edit method)."""
TARGETS: dict[str, float] = {"csd_b_read_rate": 0.85, "changed_outside_texels": 0}
LOCKED_FRACTION = 0.10


def _held_out_colors() -> frozenset[str]:
    """Colours whose solid texture on any shape is held out of the built-in prior's training data."""
    from csdtex.tinyprior.synthetic import HELD_OUT_COMBOS

    return frozenset(c for shape, pattern, c in HELD_OUT_COMBOS if shape is None and pattern in (None, "solid") and c)


def color_prompt(color: str) -> str:
    """``"a {color} object"`` (``"an orange object"``): the short solid caption of the prior's vocabulary."""
    return fidelity.BenchmarkPrompt("solid", (color,)).text(GENERIC_NOUN)


def pair_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


# ======================================================================================================================
# The locked region
# ======================================================================================================================


def locked_columns(covered: np.ndarray, fraction: float) -> int:
    """How many rightmost columns of bool [H, W] ``covered`` hold at least ``fraction`` of its covered texels (at
    least 1 and at most W - 1)."""
    per_column = covered.sum(axis=0)
    from_right = np.cumsum(per_column[::-1])
    k = int(np.searchsorted(from_right, fraction * from_right[-1], side="left")) + 1
    return int(min(max(k, 1), covered.shape[1] - 1))


LOCKED_REGIONS: tuple[str, ...] = ("columns", "bottom")
"""``--locked-region`` choices: ``columns`` = the rightmost texture columns (the default, as in every run before
session 7), ``bottom`` = the covered texels whose surface point is lowest in world +Y (the underside and foot of a
mesh, which the turntable's 15-degree elevation hardly shows)."""


def make_locked_mask(render_mesh, size: int, fraction: float, backend: str, path: Path,
                     region: str = "columns") -> tuple[np.ndarray, dict]:
    """Write the UV mask PNG (``size`` x ``size``, white = editable) that locks ``fraction`` of the covered texels of
    ``render_mesh``'s UV charts (all materials): the rightmost columns holding that share (``region="columns"``), or
    the covered texels whose interpolated world position (the mesh's normalized render space, +Y up) is lowest
    (``region="bottom"``).

    Returns:
        (bool [size, size] locked texels, record ``{"region", "locked_texels", "locked_covered_fraction",
        "covered_texels", "texture_size"}`` plus ``"columns", "u_from"`` for columns or ``"y_below"`` (the world-Y
        threshold) for bottom).
    """
    from PIL import Image

    from csdtex.bake import rasterize_uv_layout
    from csdtex.render.fragments import interpolate

    if region not in LOCKED_REGIONS:
        raise ValueError(f"region must be one of {LOCKED_REGIONS}, got {region!r}")
    covered = np.zeros((size, size), dtype=bool)
    heights = np.full((size, size), np.inf, dtype=np.float64)
    for material in range(render_mesh.num_materials):
        fragments = rasterize_uv_layout(render_mesh, material, size, backend=backend)
        here = fragments.mask[0].cpu().numpy()
        covered |= here
        if region == "bottom" and here.any():
            y = interpolate(render_mesh.positions[:, 1:2].float(), render_mesh.faces, fragments)[0, ..., 0]
            heights = np.where(here, np.minimum(heights, y.cpu().numpy()), heights)
    record: dict[str, Any] = {"region": region}
    if region == "columns":
        k = locked_columns(covered, fraction)
        locked = np.zeros((size, size), dtype=bool)
        locked[:, size - k:] = True
        record.update(columns=k, u_from=round((size - k) / size, 4))
    else:
        threshold = float(np.quantile(heights[covered], fraction)) if covered.any() else -np.inf
        locked = covered & (heights <= threshold)
        record["y_below"] = round(threshold, 5)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(locked, 0, 255).astype(np.uint8)).save(path)
    record.update(locked_texels=int(locked.sum()),
                  locked_covered_fraction=round(float((covered & locked).sum() / max(1, covered.sum())), 4),
                  covered_texels=int(covered.sum()), texture_size=size)
    return locked, record


def changed_texels(before: Sequence[np.ndarray], after: Sequence[np.ndarray], locked: np.ndarray) -> int:
    """Texels inside ``locked`` (bool [H, W]) whose bytes differ between ``before`` and ``after`` (uint8 [H, W, 3]
    per material), summed over the materials."""
    if len(before) != len(after):
        raise RuntimeError(f"the edit returned {len(after)} textures for {len(before)} materials")
    total = 0
    for original, edited in zip(before, after):
        if original.shape != edited.shape or original.shape[:2] != locked.shape:
            raise RuntimeError(f"texture {original.shape} / edit {edited.shape} / mask {locked.shape} differ in size")
        total += int(((original != edited).any(axis=-1) & locked).sum())
    return total


# ======================================================================================================================
# Command line, summary, table
# ======================================================================================================================


def parse_overrides(items: Sequence[str]) -> dict:
    """``["texel_learning_rate_scale=0.1", "guidance.w2_end=0.5"]`` -> nested dict for ``apply_overrides``."""
    values: dict = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        target = values
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None,
                   help=f"prior (alias, folder or hub id); default {DEFAULT_MODEL.relative_to(ROOT)} (the built-in "
                        "prior, alias 'tiny') when it exists")
    p.add_argument("--methods", default=",".join(EDIT_METHODS), help="edit methods: comma-separated subset of csd,sds")
    p.add_argument("--steps", type=int, default=200, help="paint steps of the starts (and edit steps by default)")
    p.add_argument("--edit-steps", type=int, default=None, help="edit steps (default: --steps)")
    p.add_argument("--views-per-step", type=int, default=4)
    p.add_argument("--texture-size", type=int, default=None,
                   help="painted texture size (default: the prior's preset, 512 for the built-in prior)")
    p.add_argument("--pairs", type=int, default=DEFAULT_PAIRS,
                   help=f"use the first N colour pairs of {len(PAIRS)} "
                        "(the first 12: each colour once as A, once as B)")
    p.add_argument("--meshes", default=",".join(fidelity.BENCHMARK_MESHES), help="comma-separated mesh names or paths")
    p.add_argument("--locked-fraction", type=float, default=LOCKED_FRACTION,
                   help="share of the covered texels in the locked (uneditable) region; 0 = no mask")
    p.add_argument("--locked-region", choices=LOCKED_REGIONS, default="columns",
                   help="where the locked texels are: the rightmost texture columns, or the lowest surface (world Y)")
    p.add_argument("--preserve", type=float, default=None, help="edit anchor weight (default: EditConfig's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other EditConfig option, e.g. texel_learning_rate_scale=0.1 or guidance.w2_end=0.5 "
                        "(values parsed as JSON, else text; repeatable)")
    p.add_argument("--variant", dest="variants", action="append", default=[], metavar="LABEL:KEY=VALUE[;KEY=VALUE]",
                   help="also edit every start with these EditConfig overrides (on top of --set), once per method; "
                        "reported as METHOD+LABEL beside METHOD (same starts, a paired comparison), e.g. "
                        "m05:saturation_margin=0.05 or hot:guidance.t_min_start=0.5;steps=400")
    p.add_argument("--lr", type=float, default=None, help="paint and edit learning rate (default: the preset's)")
    p.add_argument("--frames", type=int, default=8, help="turntable views classified per result")
    p.add_argument("--grid-views", type=int, default=4, help="views per column in the PNG grid")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="seed of every paint and edit")
    p.add_argument("--classifier", default=None, help="attribute classifier weights (default: the shipped one)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the (mesh, pair) jobs, each loads the prior (e.g. 8 on a GPU machine)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for <name>.json / _grid.png")
    p.add_argument("--name", default="edit", help="stem of the output files")
    p.add_argument("--keep-outputs", default=None,
                   help="folder to keep every paint / edit run's outputs and masks in (default: a temporary folder)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.methods = list(dict.fromkeys(m.strip() for m in args.methods.split(",") if m.strip()))
    if not args.methods or set(args.methods) - set(EDIT_METHODS):
        p.error(f"--methods: choose from {EDIT_METHODS}, got {args.methods}")
    variants = []
    for text in args.variants:
        label, _, items = text.partition(":")
        items = [item.strip() for item in items.split(";") if item.strip()]
        if not label.strip() or not items or any("=" not in item for item in items):
            p.error(f"--variant {text!r}: expected LABEL:KEY=VALUE[;KEY=VALUE]")
        variants.append((label.strip(), items))
    args.variants = variants
    if not 1 <= args.pairs <= len(PAIRS):
        p.error(f"--pairs must be in 1..{len(PAIRS)}")
    if args.steps < 1 or (args.edit_steps is not None and args.edit_steps < 1):
        p.error("--steps and --edit-steps must be at least 1")
    args.edit_steps = args.steps if args.edit_steps is None else args.edit_steps
    if not 0.0 <= args.locked_fraction < 1.0:
        p.error("--locked-fraction must be in [0, 1)")
    if args.frames < 1 or not 1 <= args.grid_views <= args.frames:
        p.error("--frames must be at least 1 and --grid-views in 1..--frames")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.model is None:
        if not DEFAULT_MODEL.exists():
            p.error(f"--model is required ({DEFAULT_MODEL.relative_to(ROOT)} does not exist)")
        args.model = str(DEFAULT_MODEL)
    return args


def edit_runs(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """The edits of every start: ``(label, method, overrides)``, each method as given, then each ``--variant`` of
    each method (label ``METHOD+LABEL``)."""
    runs = [(method, method, []) for method in args.methods]
    runs += [(f"{method}+{label}", method, items) for label, items in args.variants for method in args.methods]
    return runs


def _rate(flags: Sequence[bool]) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def summarize(runs: list[dict], methods: Sequence[str]) -> dict[str, Any]:
    """``{"start": {n, a_read_rate, per_mesh, seconds_per_run}, method: {n, b_read_rate, b_read_rate_editable (B read
    with the locked texels hidden; None without a mask), b_read_rate_good_starts,
    a_still_read_rate, changed_outside_total, changed_outside_max, changed_inside_mean, per_mesh: {mesh: {n,
    b_read_rate}}, per_pair: {"A->B": {n, b_read_rate}}, seconds_per_run}}`` (rates are fractions in [0, 1])."""
    starts = [r for r in runs if r["method"] == "start"]
    summary: dict[str, Any] = {"start": {
        "n": len(starts), "a_read_rate": _rate([r["a_read"] for r in starts]),
        "per_mesh": {m: {"n": len(mine), "a_read_rate": _rate([r["a_read"] for r in mine])}
                     for m in dict.fromkeys(r["mesh"] for r in starts)
                     for mine in [[r for r in starts if r["mesh"] == m]]},
        "seconds_per_run": _rate([r["seconds"] for r in starts]),
    }}  # fmt: skip
    for method in methods:
        mine = [r for r in runs if r["method"] == method]

        def block(subset: list[dict]) -> dict[str, Any]:
            editable = [r["b_read_editable"] for r in subset if r.get("b_read_editable") is not None]
            return {"n": len(subset), "b_read_rate": _rate([r["b_read"] for r in subset]),
                    "b_read_rate_editable": _rate(editable)}

        summary[method] = {
            **block(mine),
            "b_read_rate_good_starts": _rate([r["b_read"] for r in mine if r["start_a_read"]]),
            "n_good_starts": sum(r["start_a_read"] for r in mine),
            "a_still_read_rate": _rate([r["a_read"] for r in mine]),
            "changed_outside_total": int(sum(r["changed_outside"] for r in mine)),
            "changed_outside_max": int(max((r["changed_outside"] for r in mine), default=0)),
            "changed_inside_mean": _rate([r["changed_inside"] for r in mine]),
            "per_mesh": {m: block([r for r in mine if r["mesh"] == m]) for m in dict.fromkeys(r["mesh"] for r in mine)},
            "per_pair": {p: block([r for r in mine if r["pair"] == p]) for p in dict.fromkeys(r["pair"] for r in mine)},
            "seconds_per_run": _rate([r["seconds"] for r in mine]),
        }
    return summary


def target_b_read_rate(method_summary: dict[str, Any] | None) -> float | None:
    """The B-read rate the target is checked on: with a locked region the rate with its texels hidden (the edited
    part reads B), else the plain rate; None when the method was not run."""
    if method_summary is None:
        return None
    editable = method_summary.get("b_read_rate_editable")
    return editable if editable is not None else method_summary["b_read_rate"]


def check_targets(summary: dict[str, Any], runs: list[dict]) -> dict[str, bool | None]:
    """CSD B-read rate (:func:`target_b_read_rate`) >= 0.85 (None when CSD was not run); 0 texels changed outside
    the mask in every edit (by this script's count and by ``csdtex.edit``'s own metric)."""
    rate = target_b_read_rate(summary.get("csd"))
    edits = [r for r in runs if r["method"] != "start"]
    return {
        "csd_b_read_rate>=0.85": None if rate is None else rate >= TARGETS["csd_b_read_rate"],
        "changed_outside==0": None if not edits
        else all(r["changed_outside"] == 0 and r["changed_outside_reported"] == 0 for r in edits),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(summary: dict[str, Any], targets: dict[str, bool | None], meshes: Sequence[str]) -> str:
    """The printed report: the starts' A-read rate, then per edit method the B-read rate (overall, per mesh, from
    good starts), how often A is still read, texels changed outside the mask, seconds per run; then the targets."""
    head = f"{'run':<11} {'n':>4} {'read':>7} " + "".join(f"{m[:8]:>9}" for m in meshes)
    lines = [head + f" {'good-start':>10} {'editable':>9} {'still A':>8} {'outside':>8} {'s/run':>7}"]
    start = summary["start"]
    lines.append(f"{'start (A)':<11} {start['n']:>4} {_pct(start['a_read_rate']):>7} "
                 + "".join(f"{_pct(start['per_mesh'].get(m, {}).get('a_read_rate')):>9}" for m in meshes)
                 + f" {'':>10} {'':>9} {'':>8} {'':>8} {start['seconds_per_run'] or 0:>7.1f}")
    for method, s in summary.items():
        if method == "start":
            continue
        lines.append(f"{method + ' (B)':<11} {s['n']:>4} {_pct(s['b_read_rate']):>7} "
                     + "".join(f"{_pct(s['per_mesh'].get(m, {}).get('b_read_rate')):>9}" for m in meshes)
                     + f" {_pct(s['b_read_rate_good_starts']):>10} {_pct(s['b_read_rate_editable']):>9}"
                     f" {_pct(s['a_still_read_rate']):>8}"
                     f" {s['changed_outside_total']:>8} {s['seconds_per_run'] or 0:>7.1f}")
    verdict = {name: "n/a" if ok is None else "PASS" if ok else "FAIL" for name, ok in targets.items()}
    csd = summary.get("csd")
    lines.append("(read = the classifier's top colour is the asked one: A for the starts, B for the edits; "
                 "editable = B read with the locked texels hidden; outside = texels changed in the locked region)")
    lines.append("targets:")
    which = "B" if csd is None or csd.get("b_read_rate_editable") is None else "B (editable)"
    lines.append(f"  CSD edits reading {which:<12}{_pct(target_b_read_rate(csd)):>6}  target >= 85%  "
                 f"{verdict['csd_b_read_rate>=0.85']}")
    total = sum(s["changed_outside_total"] for k, s in summary.items() if k != "start")
    lines.append(f"  texels changed outside mask {total:>8}  target 0       {verdict['changed_outside==0']}")
    return "\n".join(lines)


def markdown_table(summary: dict[str, Any], meshes: Sequence[str], record_settings: dict[str, Any]) -> str:
    """A Markdown table of the result for ``benchmarks/README.md``."""
    cols = " | ".join(meshes)
    lines = [(f"| run | n | colour read | {cols} | B read from good starts | B read, locked texels hidden | A still "
              f"read | texels changed outside the mask | s/run |"),
             "| --- " * (9 + len(meshes) - 1) + "|"]
    start = summary["start"]
    lines.append(f"| paint A (CSD) | {start['n']} | {_pct(start['a_read_rate'])} (A) | "
                 + " | ".join(_pct(start["per_mesh"].get(m, {}).get("a_read_rate")) for m in meshes)
                 + f" | | | | | {start['seconds_per_run'] or 0:.1f} |")
    for method, s in summary.items():
        if method == "start":
            continue
        lines.append(f"| {method.upper()} edit A -> B | {s['n']} | {_pct(s['b_read_rate'])} (B) | "
                     + " | ".join(_pct(s["per_mesh"].get(m, {}).get("b_read_rate")) for m in meshes)
                     + f" | {_pct(s['b_read_rate_good_starts'])} | {_pct(s['b_read_rate_editable'])} | "
                     f"{_pct(s['a_still_read_rate'])} | "
                     f"{s['changed_outside_total']} | {s['seconds_per_run'] or 0:.1f} |")
    lines.append("")
    lines.append(f"{record_settings.get('pairs', '?')} colour pairs, {record_settings.get('steps')} paint / "
                 f"{record_settings.get('edit_steps')} edit steps, {record_settings.get('views_per_step')} views per "
                 f"step, seed {record_settings.get('seed')}, device {record_settings.get('device')} "
                 f"({record_settings.get('gpu') or platform.processor() or 'cpu'}); `{record_settings.get('command')}`")
    return "\n".join(lines)


# ======================================================================================================================
# The benchmark
# ======================================================================================================================

GRID_COLUMNS = {"start": "start: paint A"}
"""Grid column headers (edit methods: ``"<METHOD> edit to B"``)."""


def _column(method: str) -> str:
    return GRID_COLUMNS.get(method, f"{method.upper()} edit to B")


def hide_locked_texels(textures: Sequence[np.ndarray], locked: np.ndarray) -> list[np.ndarray]:
    """Copies of ``textures`` (uint8 [H, W, C], the first at ``locked``'s size) with the locked texels set to white,
    the turntable's background, so that a render shows only the editable part of the surface; textures of other sizes
    (other materials, never locked by this benchmark) are returned unchanged."""
    hidden = []
    for texture in textures:
        if texture.shape[:2] == locked.shape:
            texture = texture.copy()
            texture[locked] = 255
        hidden.append(texture)
    return hidden


def _classify(render_mesh, textures: Sequence[np.ndarray]):
    """Turntable frames (uint8 [frames, 64, 64, 3]) and the classifier's prediction of a textured mesh."""
    from csdtex.field import UVTexture

    w, args = fidelity._WORKER, fidelity._WORKER["args"]
    model = UVTexture.from_images(list(textures)).to(w["device"])
    frames = fidelity.render_turntable(render_mesh, model, args.frames, w["device"], w["backend"])
    return frames, attributes.classify_views(frames, w["classifier"])


def _evaluate(job: tuple[int, int]) -> tuple[int, int, list[dict], dict[str, Any], dict[str, Any]]:
    """Paint one (mesh index, pair index) start, edit it with every method, classify all; returns (mesh, pair, runs,
    grid row, locked-region record)."""
    from csdtex.config import EditConfig, PaintConfig, apply_overrides
    from csdtex.editing import edit
    from csdtex.mesh import load_mesh
    from csdtex.painting import paint
    from csdtex.preview import material_texture_images

    mesh_index, pair_index = job
    w = fidelity._WORKER
    args, device = w["args"], w["device"]
    mesh_name, mesh = w["meshes"][mesh_index]
    color_a, color_b = PAIRS[pair_index]
    source, target = color_prompt(color_a), color_prompt(color_b)
    held_out = bool({color_a, color_b} & _held_out_colors())
    work = w["work"] / mesh_name / f"pair{pair_index:02d}"
    common = {"pair_index": pair_index, "pair": pair_label((color_a, color_b)), "mesh": mesh_name,
              "color_a": color_a, "color_b": color_b, "held_out": held_out}
    quiet = {"checkpoint_every": 0, "preview_frames": 2, "preview_size": 64, "learning_rate": args.lr}

    started = time.perf_counter()
    painted = paint(mesh, source, PaintConfig(
        model=str(args.model), guidance_method=PAINT_METHOD, steps=args.steps, views_per_step=args.views_per_step,
        texture_size=args.texture_size, seed=args.seed, device=str(device), **quiet,
    ), work / "paint", show_progress=False, prior=w["prior"], warn=lambda message: None)  # fmt: skip
    start_mesh = load_mesh(painted.files.obj)  # exactly what every edit starts from
    before = material_texture_images(start_mesh)
    start_render = start_mesh.to_render(device)
    frames, prediction = _classify(start_render, before)
    start_a_read = attributes.colors_correct(prediction.color_probs, [color_a])
    runs = [{"method": "start", **common, "prompt": source, "a_read": start_a_read,
             "predicted_colors": list(prediction.top_colors(3)), "probabilities": prediction.to_dict(),
             "seconds": round(time.perf_counter() - started, 3),
             "timings": {k: round(v, 3) for k, v in painted.timings.items()}}]  # fmt: skip
    row: dict[str, Any] = {"label": f"{mesh_name}: {color_a} -> {color_b}",
                           _column("start"): {"frames": frames, "color_correct": start_a_read,
                                              "pattern_correct": start_a_read}}
    size = before[0].shape[0]
    mask_path = work / "mask.png" if args.locked_fraction > 0 else None
    if mask_path is not None:
        locked, locked_record = make_locked_mask(start_render, size, args.locked_fraction, w["backend"], mask_path,
                                                 args.locked_region)
    else:
        locked, locked_record = np.zeros((size, size), dtype=bool), {"columns": 0, "locked_texels": 0}

    for label, method, extra in edit_runs(args):
        started = time.perf_counter()
        config = EditConfig(model=str(args.model), guidance_method=method, steps=args.edit_steps,
                            views_per_step=args.views_per_step, seed=args.seed, device=str(device),
                            preserve=args.preserve, **quiet)  # fmt: skip
        config = apply_overrides(config, parse_overrides(list(args.overrides) + list(extra)), source="--set")
        result = edit(painted.files.obj, target, source, config, out_dir=work / label, mask=mask_path,
                      prior=w["prior"], show_progress=False, warn=lambda message: None)  # fmt: skip
        edited_render = result.mesh.to_render(device)
        frames, prediction = _classify(edited_render, result.textures)
        b_read = attributes.colors_correct(prediction.color_probs, [color_b])
        b_read_editable = None  # with a mask: B read with the locked texels hidden (white, as the background)
        if mask_path is not None:
            _, editable = _classify(edited_render, hide_locked_texels(result.textures, locked))
            b_read_editable = attributes.colors_correct(editable.color_probs, [color_b])
        runs.append({
            "method": label, **common, "prompt": target, "source": source, "b_read": b_read,
            "b_read_editable": b_read_editable, "steps": config.steps,
            "overrides": list(extra),
            "a_read": attributes.colors_correct(prediction.color_probs, [color_a]), "start_a_read": start_a_read,
            "predicted_colors": list(prediction.top_colors(3)), "probabilities": prediction.to_dict(),
            "changed_outside": changed_texels(before, result.textures, locked),
            "changed_outside_reported": int(result.metrics["changed_outside"]),
            "changed_inside": round(float(result.metrics["changed_inside"]), 4),
            "fit_error_max": float(result.metrics["fit_error_max"]),
            "seconds": round(time.perf_counter() - started, 3),
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
        })  # fmt: skip
        row[_column(label)] = {"frames": frames, "color_correct": b_read, "pattern_correct": b_read}
    return mesh_index, pair_index, runs, row, locked_record


def _settings(args: argparse.Namespace, mesh_names: list[str]) -> dict[str, Any]:
    device = fidelity._WORKER.get("device") or args.device
    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(str(device)))
    return {
        "command": "python benchmarks/edit.py" + "".join(f" {shlex.quote(a)}" for a in args.argv),
        "model": args.model, "methods": args.methods, "paint_method": PAINT_METHOD, "workers": args.workers,
        "variants": {label: items for label, items in args.variants},
        "steps": args.steps, "edit_steps": args.edit_steps, "views_per_step": args.views_per_step,
        "texture_size": args.texture_size or "prior preset (512 for the built-in prior)",
        "learning_rate": args.lr, "preserve": args.preserve, "overrides": args.overrides, "pairs": args.pairs,
        "meshes": mesh_names,
        "locked_fraction": args.locked_fraction, "locked_region": args.locked_region, "frames": args.frames,
        "seed": args.seed, "device": str(device),
        "gpu": gpu, "renderer": fidelity._WORKER.get("backend") or "auto (in workers)",
        "classifier": str(args.classifier or fidelity.relative_to_checkout(attributes.default_weights_path())),
        "scoring": "colour read: the top colour of the view-averaged sigmoid probabilities is the asked colour "
                   "(attributes.colors_correct(probs, [colour]), fidelity's rule with k = 1)",
        "prompts": 'paint "a {A} object"; edit to "a {B} object" with source "a {A} object"',
        "render": f"turntable, {args.frames} views, 64x64, albedo over white, elevation 15 deg (fidelity.py)",
        "python": platform.python_version(), "torch": torch.__version__, "host_cpus": _cpu_count(),
    }  # fmt: skip


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by parsed ``args`` (see :func:`parse_args`); write the JSON and the PNG grid.

    With ``args.workers > 1`` the (mesh, pair) jobs are spread over that many spawned processes (each loads the prior
    and the classifier once, :func:`fidelity._setup`); results do not depend on the number of workers.

    Returns:
        The JSON-ready record written to ``<out>/<name>.json``.
    """
    start = time.perf_counter()
    out = Path(args.out)
    keep = Path(args.keep_outputs) if args.keep_outputs else None
    temporary = None if keep else tempfile.TemporaryDirectory(prefix="csdtex_edit_benchmark_")
    work = str(keep if keep else temporary.name)
    mesh_names = [fidelity.benchmark_mesh_name(m.strip()) for m in args.meshes.split(",") if m.strip()]
    jobs = [(m, p) for m in range(len(mesh_names)) for p in range(args.pairs)]
    results: dict[tuple[int, int], tuple[list[dict], dict[str, Any], dict[str, Any]]] = {}
    labels = [label for label, _, _ in edit_runs(args)]
    total = len(jobs) * (1 + len(labels))
    done = 0

    def report(runs: list[dict]) -> None:
        nonlocal done
        for run in runs:
            done += 1
            asked = run["color_a"] if run["method"] == "start" else run["color_b"]
            ok = run["a_read"] if run["method"] == "start" else run["b_read"]
            extra = "" if run["method"] == "start" else f", outside changed {run['changed_outside']}"
            print(f"[{done}/{total}] {run['method']:<5} {run['mesh']:<6} {run['pair']:<14} {asked} "
                  f"{'read' if ok else 'NOT read'} (top {run['predicted_colors'][0]}){extra} ({run['seconds']:.1f} s)",
                  flush=True)  # fmt: skip

    # fidelity._setup loads the meshes (unwrapping the duck once), the prior and the classifier into
    # fidelity._WORKER; it reads args.workers / device / meshes / texture_size / methods / model / classifier.
    try:
        if args.workers > 1:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with context.Pool(min(args.workers, len(jobs)), initializer=fidelity._setup,
                              initargs=(args, work)) as pool:
                for mesh_index, pair_index, runs, row, locked in pool.imap_unordered(_evaluate, jobs):
                    results[(mesh_index, pair_index)] = (runs, row, locked)
                    report(runs)
        else:
            fidelity._setup(args, work)
            for job in jobs:
                mesh_index, pair_index, runs, row, locked = _evaluate(job)
                results[(mesh_index, pair_index)] = (runs, row, locked)
                report(runs)
    finally:
        if temporary is not None:
            temporary.cleanup()

    runs = [run for job in jobs for run in results[job][0]]
    locked_region = {mesh_names[m]: results[(m, 0)][2] for m in range(len(mesh_names))}
    columns = [_column("start")] + [_column(label) for label in labels]
    grid_path = fidelity.write_grid(out / f"{args.name}_grid.png", [results[job][1] for job in jobs], columns,
                                    args.grid_views)
    summary = summarize(runs, labels)
    targets = check_targets(summary, runs)
    settings = _settings(args, mesh_names)
    record = {
        "settings": settings,
        "pairs": [list(pair) for pair in PAIRS[: args.pairs]],
        "locked_region": locked_region,
        "targets": {**TARGETS},
        "summary": summary,
        "targets_met": targets,
        "runs": runs,
        "files": {"grid": grid_path.name, "grid_rows": len(jobs), "grid_columns": columns},
        "markdown": markdown_table(summary, mesh_names, settings),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return _write_record(record, out / f"{args.name}.json", grid_path, mesh_names)


def merge_results(parts: Sequence[str | Path], out: str | Path, name: str) -> dict[str, Any]:
    """Merge records of disjoint runs (e.g. one mesh per call) into one: runs concatenated, summary and targets
    recomputed, grids (read from beside each JSON) stacked vertically; settings are the first part's, with every
    part's command, meshes and seconds listed.

    Returns:
        The merged record, also written to ``<out>/<name>.json`` with ``<out>/<name>_grid.png``.
    """
    from common import stack_part_grids

    records = [(Path(part), json.loads(Path(part).read_text())) for part in parts]
    runs = [r for _, record in records for r in record["runs"]]
    if len({(r["method"], r["mesh"], r["pair_index"]) for r in runs}) != len(runs):
        raise SystemExit("the parts overlap: the same (method, mesh, pair) was run twice")
    methods = list(dict.fromkeys(m for _, record in records for m in record["settings"]["methods"]))
    meshes = list(dict.fromkeys(m for _, record in records for m in record["settings"]["meshes"]))
    out = Path(out)
    grid_path = stack_part_grids(records, out, name)
    summary = summarize(runs, methods)
    targets = check_targets(summary, runs)
    settings = {**records[0][1]["settings"], "meshes": meshes, "methods": methods,
                "pairs": max(r["settings"]["pairs"] for _, r in records),
                "parts": [{"json": path.name, "command": r["settings"]["command"], "meshes": r["settings"]["meshes"],
                           "seconds": r["seconds"]} for path, r in records]}  # fmt: skip
    pairs = max((r["pairs"] for _, r in records), key=len)
    record = {"settings": settings, "pairs": pairs,
              "locked_region": {k: v for _, r in records for k, v in r["locked_region"].items()},
              "targets": records[0][1]["targets"], "summary": summary, "targets_met": targets, "runs": runs,
              "files": {"grid": grid_path.name, "grid_rows": sum(r["files"]["grid_rows"] for _, r in records),
                        "grid_columns": records[0][1]["files"]["grid_columns"]},
              "markdown": markdown_table(summary, meshes, settings),
              "seconds": round(sum(r["seconds"] for _, r in records), 1)}  # fmt: skip
    return _write_record(record, out / f"{name}.json", grid_path, meshes)


def _write_record(record: dict[str, Any], json_path: Path, grid_path: Path, meshes: Sequence[str]) -> dict[str, Any]:
    """Write ``record`` to ``json_path`` (atomically), print its table and Markdown, and return it."""
    write_text_atomic(json_path, json.dumps(record, indent=2) + "\n")
    print(format_table(record["summary"], record["targets_met"], meshes))
    print()
    print(record["markdown"])
    print(f"wrote {json_path} and {grid_path} ({record['seconds']} s)")
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point: parse ``argv`` and run :func:`run_benchmark`; or, with ``--merge A.json B.json
    ...``, merge finished parts (:func:`merge_results`) into ``--out``/``--name``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also when loaded by path
    from common import run_or_merge

    return run_or_merge(argv, script="edit.py", default_name="edit", run_benchmark=run_benchmark,
                        parse_args=parse_args, merge_results=merge_results)


if __name__ == "__main__":
    main()
