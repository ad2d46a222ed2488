"""Train the attribute classifier of the fidelity benchmark (csdtex.tinyprior.attributes) on synthetic renders, on the
CPU (default) or a GPU (``--device cuda``; the data is rendered on the CPU by ``--data-workers`` processes).

Data (:func:`csdtex.tinyprior.synthetic.generate_dataset`, 64x64; one view per object for training, so that 30k images
are 30k different objects; two per object for evaluation):

- Splits: the built-in prior trains on split ``train`` only (``benchmarks/train_prior.py``). The classifier trains on
  the two splits the prior never sees: ``test`` (same distribution as ``train`` from a disjoint seed stream and
  disjoint mesh pool: every pattern / colour, minus the held-out combinations) for ``1 - --held-out-share`` of the
  images, and ``held_out`` (only the combinations of :data:`csdtex.tinyprior.synthetic.HELD_OUT_COMBOS`, e.g. solid
  purple, orange boxes, checkered tori) for the rest, so that the classifier has seen every colour with every pattern
  and does not learn the prior's gaps as rules (e.g. "solid is never purple"). Neither split is used to train the prior;
  the prior's held-out loss only reads ``test`` renders, which is unaffected.
- Evaluation: the same two splits from ``--eval-seed`` (disjoint objects and mesh pools: every object and mesh of a
  dataset is seeded by (seed, split, index)).
- Variety: backgrounds white (1/2) or a uniform random colour (1/2), ``--lit-probability`` of the views with headlight
  diffuse shading instead of albedo, cameras at elevation -10..75 degrees, distance 1.5..2.8 (the benchmark's
  turntable sits at 2.6), fov 40..70.
- Augmentation at train time: horizontal flip (keeps every label; vertical flips would swap top and bottom of
  gradients / halves), random scale 0.85..1.15 and shift up to 12% (border padding), a 3x3 blur on 30% of the images
  and Gaussian pixel noise (sigma up to 0.03), so that painted, baked textures (softer than procedural ones) stay in
  distribution.

Model and training: :class:`csdtex.tinyprior.attributes.AttributeClassifier` (default channels 32/64/96/128, hidden 192,
0.51 M parameters, stored as float16: ~1 MB), loss = binary cross-entropy of the 12 colour sigmoids against the
multi-hot colour set + cross-entropy of the 6 patterns (label smoothing 0.05); AdamW, one-cycle schedule (5% warm-up,
cosine decay), fixed number of epochs
(``--time-limit-minutes`` is only a safety stop), seed ``--seed`` for everything (data order, augmentation, init).

Outputs in ``--out`` (default ``assets/classifier``): ``attributes.safetensors`` (weights), ``attributes.json``
(architecture, vocabulary, training record with the command, data sizes, timings and accuracies) and ``README.md``.

Example (the shipped classifier; on 2 CPU cores about 3 minutes of data generation and 5.5 minutes of training)::

    python benchmarks/train_attribute_classifier.py
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from csdtex.cameras import CameraRanges  # noqa: E402
from csdtex.fileio import write_text_atomic  # noqa: E402
from csdtex.tinyprior import attributes, synthetic  # noqa: E402

CLASSIFIER_CAMERAS = CameraRanges(elevation_deg=(-10.0, 75.0), distance=(1.5, 2.8))
"""Camera ranges of the classifier's data: the synthetic data's ranges with the distance widened to 2.8 so that the
benchmark's turntable distance (2.6) is inside them."""

CLASSIFIER_CAMERAS_V2 = CameraRanges(elevation_deg=(-25.0, 75.0), distance=(1.5, 2.8))
"""Camera ranges with ``--data-version 2``: data version 2's elevations
(:data:`csdtex.tinyprior.synthetic_v2.DATA_CAMERAS_V2`), distance widened to 2.8 as above."""


def classifier_cameras(data_version: int) -> CameraRanges:
    """The camera ranges of the classifier's data of ``data_version`` (1 or 2)."""
    return CLASSIFIER_CAMERAS if data_version == 1 else CLASSIFIER_CAMERAS_V2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "assets" / "classifier"))
    p.add_argument("--train-images", type=int, default=30000)
    p.add_argument("--eval-images", type=int, default=3000)
    p.add_argument("--held-out-share", type=float, default=0.2, help="share of images from split held_out")
    p.add_argument("--seed", type=int, default=0, help="seed of the training data, initialization and order")
    p.add_argument("--eval-seed", type=int, default=1, help="seed of the evaluation data (disjoint objects)")
    p.add_argument("--lit-probability", type=float, default=0.3)
    p.add_argument("--views-per-object", type=int, default=1, help="training views per object (evaluation: 2)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--channels", default="32,64,96,128")
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="where to train: 'cpu' (default), 'cuda' or 'cuda:N' (data is "
                                                   "always rendered on the CPU; results match the CPU's within "
                                                   "floating-point differences)")
    p.add_argument("--data-workers", type=int, default=1,
                   help="processes rendering the data (identical data for any number; see "
                        "csdtex.tinyprior.synthetic.generate_dataset_parallel)")
    p.add_argument("--time-limit-minutes", type=float, default=10.0, help="safety stop of the training loop")
    p.add_argument("--data-cache", default=None, help="folder for .npz shards of the generated data (reused)")
    p.add_argument("--data-version", type=int, choices=(1, 2), default=1,
                   help="synthetic data version and label set: 1 = the shipped classifier's (6 patterns), 2 = issue "
                        "#15's shapes, materials and 10 patterns (attributes.LABEL_SETS)")
    return p.parse_args(argv)


# ======================================================================================================================
# Data
# ======================================================================================================================


def make_split_data(num_images: int, seed: int, split: str, lit_probability: float, views_per_object: int,
                    cache: Path | None, data_version: int = 1, workers: int = 1) -> tuple[np.ndarray, list[dict]]:
    """Renders and metadata of one split: (uint8 [N, 64, 64, 3], N metadata dicts), from the cache when present."""
    if num_images == 0:
        return np.zeros((0, 64, 64, 3), np.uint8), []
    name = f"attributes_{split}_seed{seed}_n{num_images}_v{views_per_object}_lit{lit_probability:g}.npz"
    if data_version != 1:
        name = name.replace(".npz", f"_dv{data_version}.npz")
    if cache is not None and (cache / name).exists():
        images, _, metadata = synthetic.load_shard(cache / name)
        return images, metadata
    images, captions, metadata = synthetic.generate_dataset_parallel(
        num_images, workers, seed=seed, split=split, views_per_object=views_per_object,
        cameras=classifier_cameras(data_version), lit_probability=lit_probability, empty_caption_probability=0.0,
        data_version=data_version,
    )
    if cache is not None:
        synthetic.save_shard(cache / name, images, captions, metadata)
    return images, metadata


def make_data(num_images: int, seed: int, held_out_share: float, lit_probability: float, views_per_object: int,
              cache: Path | None, data_version: int = 1, workers: int = 1) -> dict[str, Any]:
    """``test`` + ``held_out`` renders with labels: dict of ``images`` uint8 [N, 64, 64, 3], ``colors`` float32
    multi-hot [N, 12], ``patterns`` int64 [N], ``color_sets`` (list of N tuples of words), ``meta`` (split,
    object id, white background, lit, coverage per image)."""
    held = int(round(num_images * held_out_share))
    parts = [make_split_data(count, seed, split, lit_probability, views_per_object, cache, data_version,
                             workers) for split, count in (("test", num_images - held), ("held_out", held))]
    labels = attributes.LABEL_SETS[data_version]
    images = np.concatenate([p[0] for p in parts])
    metadata = [m for p in parts for m in p[1]]
    color_sets = [tuple(m["texture"]["colors"]) for m in metadata]
    return {
        "images": images,
        "colors": attributes.color_targets(color_sets),
        "patterns": np.array([labels.index(m["texture"]["pattern"]) for m in metadata], np.int64),
        "color_sets": color_sets,
        "meta": [{"split": m["split"], "object": (m["split"], m["object"]), "white": m["background"] == [1.0] * 3,
                  "lit": m["lit"], "coverage": m["coverage"]} for m in metadata],
    }


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Train-time augmentation of float [B, 3, 64, 64] images in [0, 1] on any device (see the module docstring); same
    range out. Random draws come from the CPU ``generator``, so the augmentation is the same on every device."""
    b, device = x.shape[0], x.device
    scale = torch.empty(b).uniform_(0.85, 1.15, generator=generator)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    shift = torch.empty(b, 2).uniform_(-0.12, 0.12, generator=generator)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = flip / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    blur = (torch.rand(b, generator=generator) < 0.3).to(device)
    kernel = torch.tensor([1.0, 2.0, 1.0], device=device)
    kernel = (kernel[:, None] * kernel[None, :] / 16.0).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    x = torch.where(blur[:, None, None, None], blurred, x)
    sigma = torch.empty(b, 1, 1, 1).uniform_(0.0, 0.03, generator=generator)
    noise = sigma * torch.randn(x.shape, generator=generator)
    return (x + noise.to(device)).clamp(0.0, 1.0)


# ======================================================================================================================
# Evaluation
# ======================================================================================================================


def evaluate(model: attributes.AttributeClassifier, data: dict[str, Any]) -> dict[str, Any]:
    """Accuracies of ``model`` on ``data`` (fractions in [0, 1]): per image overall and by split / background /
    shading / pattern, per-colour recall, and per object (probabilities of its 2 views averaged)."""
    color_probs, pattern_probs = attributes.predict_probabilities(data["images"], model)
    meta, sets = data["meta"], data["color_sets"]
    labels = tuple(model.patterns)
    patterns = [labels[i] for i in data["patterns"]]
    color_ok = np.array([attributes.colors_correct(c, s) for c, s in zip(color_probs, sets)])
    pattern_ok = np.array([attributes.pattern_correct(p, t, labels) for p, t in zip(pattern_probs, patterns)])

    def block(mask: np.ndarray) -> dict[str, Any]:
        return {"n": int(mask.sum()), "color": float(color_ok[mask].mean()) if mask.any() else None,
                "pattern": float(pattern_ok[mask].mean()) if mask.any() else None}

    everything = np.ones(len(meta), bool)
    report: dict[str, Any] = {"per_image": block(everything)}
    report["by_split"] = {s: block(np.array([m["split"] == s for m in meta])) for s in ("test", "held_out")}
    report["by_background"] = {"white": block(np.array([m["white"] for m in meta])),
                               "colored": block(np.array([not m["white"] for m in meta]))}
    report["by_shading"] = {"albedo": block(np.array([not m["lit"] for m in meta])),
                            "lit": block(np.array([m["lit"] for m in meta]))}
    report["by_pattern"] = {p: block(np.array([q == p for q in patterns])) for p in labels}
    recall = {}
    for c in attributes.COLOR_NAMES:  # share of objects showing colour c whose top-k colours include c
        rows = [i for i, s in enumerate(sets) if c in s]
        hits = [c in attributes.top_colors(color_probs[i], len(set(sets[i]))) for i in rows]
        recall[c] = float(np.mean(hits)) if hits else None
    report["color_recall"] = recall

    objects: dict[tuple, list[int]] = {}
    for i, m in enumerate(meta):
        objects.setdefault(tuple(m["object"]), []).append(i)
    obj_color = [attributes.colors_correct(color_probs[ix].mean(0), sets[ix[0]]) for ix in objects.values()]
    obj_pattern = [attributes.pattern_correct(pattern_probs[ix].mean(0), patterns[ix[0]], labels)
                   for ix in objects.values()]
    report["per_object"] = {"n": len(objects), "color": float(np.mean(obj_color)),
                            "pattern": float(np.mean(obj_pattern))}
    return report


# ======================================================================================================================
# Training
# ======================================================================================================================


def train(args: argparse.Namespace, train_data: dict[str, Any], eval_data: dict[str, Any]):
    """Train a classifier on ``train_data``.

    Returns:
        (model in eval mode, list of per-epoch log dicts, whether the time limit stopped it early).
    """
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    channels = tuple(int(c) for c in args.channels.split(","))
    model = attributes.AttributeClassifier(channels, args.hidden, patterns=attributes.LABEL_SETS[args.data_version])
    device = torch.device(args.device)
    model = model.to(device=device, memory_format=torch.channels_last)
    images = torch.from_numpy(train_data["images"]).permute(0, 3, 1, 2).contiguous().to(device)  # uint8 [N,3,64,64]
    colors = torch.from_numpy(train_data["colors"]).to(device)
    patterns = torch.from_numpy(train_data["patterns"]).to(device)
    n = len(images)
    steps_per_epoch = n // args.batch
    total_steps = steps_per_epoch * args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total_steps,
                                                   pct_start=0.05, anneal_strategy="cos", div_factor=10.0,
                                                   final_div_factor=100.0)
    start = time.perf_counter()
    log: list[dict[str, Any]] = []
    stopped = False
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        losses = []
        for step in range(steps_per_epoch):
            index = order[step * args.batch : (step + 1) * args.batch].to(device)
            x = augment(images[index].float() / 255.0, generator)
            x = (x * 2.0 - 1.0).contiguous(memory_format=torch.channels_last)
            color_logits, pattern_logits = model(x)
            loss = F.binary_cross_entropy_with_logits(color_logits, colors[index]) * len(attributes.COLOR_NAMES) / 2
            loss = loss + F.cross_entropy(pattern_logits, patterns[index], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.detach())
        model.eval()
        quick = evaluate(model, eval_data)["per_image"]
        entry = {"epoch": epoch + 1, "loss": float(torch.stack(losses).mean()), "eval_color": quick["color"],
                 "eval_pattern": quick["pattern"], "seconds": round(time.perf_counter() - start, 1)}
        log.append(entry)
        print(f"epoch {entry['epoch']:>2}: loss {entry['loss']:.4f}, eval colour {100 * entry['eval_color']:.1f}%, "
              f"pattern {100 * entry['eval_pattern']:.1f}% ({entry['seconds']} s)", flush=True)
        elapsed = time.perf_counter() - start
        if epoch + 1 < args.epochs and elapsed * (epoch + 2) / (epoch + 1) > args.time_limit_minutes * 60:
            stopped = True
            print(f"stopping after epoch {epoch + 1}: the next epoch would pass --time-limit-minutes", flush=True)
            break
    model.eval()
    return model.cpu(), log, stopped


def _split_counts(data: dict[str, Any]) -> dict[str, int]:
    """Images per split (``test``, ``held_out``) of a dataset built by :func:`make_data`."""
    return {s: sum(m["split"] == s for m in data["meta"]) for s in ("test", "held_out")}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def write_readme(path: Path, record: dict[str, Any], weights_bytes: int) -> Path:
    """Write the model card ``README.md`` from the training record (command, data, accuracies, timings, size)."""
    e = record["evaluation"]
    rows = "\n".join(f"| {name} | {b['n']} | {_pct(b['color'])} | {_pct(b['pattern'])} |" for name, b in [
        ("all images", e["per_image"]), ("objects (2 views averaged)", e["per_object"]),
        ("split test", e["by_split"]["test"]), ("split held_out", e["by_split"]["held_out"]),
        ("white background", e["by_background"]["white"]), ("coloured background", e["by_background"]["colored"]),
        ("albedo shading", e["by_shading"]["albedo"]), ("lit shading", e["by_shading"]["lit"]),
        *[(f"pattern {p}", b) for p, b in e["by_pattern"].items()],
    ])
    recall = ", ".join(f"{c} {_pct(v)}" for c, v in e["color_recall"].items())
    d = record["data"]
    distance, elevation = d["cameras"]["distance"], d["cameras"]["elevation_deg"]
    text = f"""# Attribute classifier (fidelity benchmark)

A small CNN (`csdtex.tinyprior.attributes.AttributeClassifier`, {record['parameters']:,} parameters,
{weights_bytes / 1024:.0f} KiB of float16 safetensors) that reads a 64x64 render of one textured object and predicts
which of the 12 colour words of `csdtex.tinyprior.vocabulary.COLORS` it shows (multi-label sigmoids) and which of
the {len(record['patterns'])} patterns {', '.join(record['patterns'])} (softmax; label set {record['data_version']}
of `csdtex.tinyprior.attributes.LABEL_SETS`). Used by `benchmarks/fidelity.py` to score painted textures against
their prompts.

- `attributes.safetensors`: the weights. `attributes.json`: architecture, vocabulary and this training record.
- Load with `csdtex.tinyprior.attributes.load_classifier()`; classify an object's turntable with
  `csdtex.tinyprior.attributes.classify_views(frames)`.

## Scoring rule

Colour: correct when the k most probable colours are exactly the set of colours the prompt names (k = 1 for solid,
2 otherwise; order ignored). Pattern: correct when the most probable pattern is the prompt's.

## Training

Command ({record.get('device', 'cpu')}, {record['threads']} CPU threads, {record['platform']}):

    {record['command']}

Data: `csdtex.tinyprior.synthetic.generate_dataset`, 64x64 (training: {d['views_per_object']['train']} view(s) per
object; evaluation: {d['views_per_object']['eval']}), on the splits the built-in prior never trains on: `test`
({d['train']['test']} images) + `held_out` ({d['train']['held_out']} images) from seed {d['train']['seed']} for
training; evaluation on {d['eval']['test']} + {d['eval']['held_out']} images of the same splits from seed
{d['eval']['seed']} (disjoint objects and meshes). Backgrounds white or random colour (1/2 each),
{d['lit_probability']:.0%} lit views, cameras at distance {distance[0]:g}..{distance[1]:g}, elevation
{elevation[0]:g}..{elevation[1]:g} degrees. Augmentation: flips,
scale / shift, blur, noise.
{record['epochs_run']} epochs, batch {record['batch']}, AdamW lr {record['lr']}, one-cycle schedule.

Time: data generation {record['seconds']['data']:.0f} s, training {record['seconds']['train']:.0f} s, evaluation and
saving {record['seconds']['eval']:.0f} s (total {record['seconds']['total']:.0f} s).

## Accuracy on the evaluation renders (seed {d['eval']['seed']})

| subset | n | colour | pattern |
|---|---|---|---|
{rows}

Per-colour recall (share of images showing the colour whose top-k colours include it): {recall}.

Single views are often ambiguous: a view can hide the second colour (halves seen from above, a close-up of one
stripe) or show too little of a pattern to tell it apart; averaging views (the "objects" row) removes most of these
errors, and the fidelity benchmark averages 8 turntable views per object.

The accuracy on painted textures of other meshes is what `benchmarks/fidelity.py` measures; its `reference` method
(ground-truth procedural textures drawn on the benchmark meshes) gives this classifier's ceiling
there.
"""
    return write_text_atomic(path, text)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Generate data, train, evaluate and write the classifier files; returns the training record."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cache = Path(args.data_cache) if args.data_cache else None
    print(f"generating {args.train_images} training + {args.eval_images} evaluation renders ...", flush=True)
    train_data = make_data(args.train_images, args.seed, args.held_out_share, args.lit_probability,
                           args.views_per_object, cache, args.data_version, args.data_workers)
    eval_data = make_data(args.eval_images, args.eval_seed, args.held_out_share, args.lit_probability, 2, cache,
                          args.data_version, args.data_workers)
    data_seconds = time.perf_counter() - start
    print(f"data ready in {data_seconds:.0f} s", flush=True)

    train_start = time.perf_counter()
    model, log, stopped = train(args, train_data, eval_data)
    train_seconds = time.perf_counter() - train_start

    eval_start = time.perf_counter()
    out = Path(args.out)
    weights, config = attributes.save_classifier(model, out / attributes.WEIGHTS_NAME)
    shipped = attributes.load_classifier(weights)  # evaluate what ships (float16 weights), not the float32 model
    evaluation = evaluate(shipped, eval_data)
    argv_used = list(sys.argv[1:]) if argv is None else list(argv)
    command = "python benchmarks/train_attribute_classifier.py" + "".join(f" {shlex.quote(a)}" for a in argv_used)
    record: dict[str, Any] = {
        "command": command,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data_version": args.data_version,
        "patterns": list(model.patterns),
        "threads": args.threads,
        "device": (torch.cuda.get_device_name(torch.device(args.device)) if torch.device(args.device).type == "cuda"
                   else "cpu"),
        "data_workers": args.data_workers,
        "platform": f"{platform.machine()}, torch {torch.__version__}",
        "data": {"train": {"seed": args.seed, **_split_counts(train_data)},
                 "eval": {"seed": args.eval_seed, **_split_counts(eval_data)},
                 "lit_probability": args.lit_probability,
                 "views_per_object": {"train": args.views_per_object, "eval": 2},
                 "cameras": {"elevation_deg": list(classifier_cameras(args.data_version).elevation_deg),
                             "distance": list(classifier_cameras(args.data_version).distance),
                             "fov_deg": list(classifier_cameras(args.data_version).fov_deg)}},
        "epochs": args.epochs, "epochs_run": len(log), "stopped_by_time_limit": stopped, "batch": args.batch,
        "lr": args.lr, "weight_decay": args.weight_decay, "log": log,
        "evaluation": evaluation,
    }
    eval_seconds = time.perf_counter() - eval_start
    record["seconds"] = {"data": round(data_seconds, 1), "train": round(train_seconds, 1),
                         "eval": round(eval_seconds, 1), "total": round(time.perf_counter() - start, 1)}
    attributes.save_classifier(model, weights, extra={"training": record})
    readme = write_readme(out / "README.md", record, weights.stat().st_size)
    e = evaluation
    print(f"held-out accuracy (seed {args.eval_seed}, {e['per_image']['n']} images): colour "
          f"{_pct(e['per_image']['color'])}, pattern {_pct(e['per_image']['pattern'])}; per object colour "
          f"{_pct(e['per_object']['color'])}, pattern {_pct(e['per_object']['pattern'])}")
    print(f"wrote {weights} ({weights.stat().st_size / 1024:.0f} KiB), {config}, {readme}; "
          f"total {record['seconds']['total']:.0f} s")
    return record


if __name__ == "__main__":
    main()
