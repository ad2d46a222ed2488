"""Attribute classifier: which colours and which pattern a 64x64 render of one textured object shows.

A small CNN used by the fidelity benchmark (``benchmarks/fidelity.py``, issue #4) to score painted textures against
their prompts. It knows the synthetic vocabulary of :mod:`csdtex.tinyprior.vocabulary`: the 12 colour words of
:data:`~csdtex.tinyprior.vocabulary.COLORS` and the 6 patterns of :data:`~csdtex.tinyprior.vocabulary.PATTERNS`. It is
trained by ``benchmarks/train_attribute_classifier.py`` on renders of the synthetic splits that the built-in prior
never trains on (see that script and ``assets/classifier/README.md``), and shipped as
``assets/classifier/attributes.safetensors`` (weights) + ``assets/classifier/attributes.json`` (architecture,
vocabulary, training record); an installed wheel has them in ``<prefix>/share/csdtex/classifier``
(:func:`default_weights_path` finds them like :mod:`csdtex.assets` finds the built-in prior).

What "colour" means
-------------------
A texture has one colour (``solid``) or two (every other pattern; e.g. "a red and blue striped box"). The colour head
is **multi-label**: one sigmoid per colour word, trained with binary cross-entropy against the *set* of the texture's
colours. A prediction is scored against a prompt with :func:`colors_correct`: take the k most probable colours, k =
the number of distinct colours the prompt names, and count it correct when that set equals the prompt's set (order
ignored). So "a red and blue striped box" needs {red, blue} as the top two; a texture that is all red scores wrong
(its second colour is missing), and so does red + green. The pattern head is a softmax over the 6 patterns, scored
by its argmax (:func:`pattern_correct`).

Order is ignored on purpose: which colour comes "first" is a convention of the caption templates (top of a
gradient / halves, base of dots) that is fair to ask of a prior only for some patterns, whereas "does the object show
exactly the colours the prompt names" is meaningful for all of them.

Input convention: RGB images [N, H, W, 3] (row 0 = top), uint8 in [0, 255] or float in [0, 1], one object per
image on any background (the training data has white and random uniform backgrounds, albedo and lit shading); images
of another size are resized to 64x64 (area interpolation).

Label sets: the shipped classifier knows version 1's 6 patterns; a classifier trained on data version 2
(``benchmarks/train_attribute_classifier.py --data-version 2``) has the 10 patterns of label set 2 (the six, then the
materials wood, marble, brick, camouflage; :data:`LABEL_SETS`). Both load with :func:`load_classifier`; predictions
carry the classifier's own pattern words.

Public API: :class:`AttributeClassifier`, :class:`AttributePrediction`, :func:`default_weights_path`, :data:`LABEL_SETS`,
:func:`label_version`,
:func:`load_classifier`, :func:`save_classifier`, :func:`predict_probabilities`, :func:`classify_views`,
:func:`colors_correct`, :func:`pattern_correct`, :func:`color_targets`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from csdtex.assets import CLASSIFIER_PARTS, CLASSIFIER_V2_PARTS, find_asset_file
from csdtex.tinyprior.vocabulary import COLORS, PATTERNS, PATTERNS_V2

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
"""The colour words in the order of the colour head's outputs (the order of
:data:`csdtex.tinyprior.vocabulary.COLORS`)."""

LABEL_SETS: dict[int, tuple[str, ...]] = {1: tuple(PATTERNS), 2: tuple(PATTERNS_V2)}
"""Pattern label sets by version: 1 = the 6 patterns of :data:`csdtex.tinyprior.vocabulary.PATTERNS` (the shipped
classifier), 2 = data version 2's 10 (:data:`csdtex.tinyprior.vocabulary.PATTERNS_V2`: the same 6 in the same order,
then wood, marble, brick, camouflage). The colour head is the same in both. A saved classifier's version is read from
its ``architecture.patterns`` (:func:`label_version`)."""


def label_version(patterns: Sequence[str]) -> int:
    """The label-set version (a key of :data:`LABEL_SETS`) of a pattern head's words; ValueError for another list."""
    for version, names in LABEL_SETS.items():
        if tuple(patterns) == names:
            return version
    raise ValueError(f"pattern labels {tuple(patterns)} are not one of csdtex.tinyprior's label sets; retrain")

INPUT_SIZE = 64
"""Side in pixels of the classifier's input images."""

WEIGHTS_NAME = "attributes.safetensors"
CONFIG_NAME = "attributes.json"


def default_weights_path(label_set: int = 1) -> Path:
    """The shipped weights of label set ``label_set`` (1 or 2, :data:`LABEL_SETS`): the first
    ``<root>/classifier/attributes.safetensors`` (label set 2: ``<root>/classifier_v2/...``) that exists, searching
    the asset roots of :func:`csdtex.assets.asset_roots` in order (``<checkout>/assets`` of a source checkout, then
    ``share/csdtex`` of an installed wheel); the checkout's path when there is none (:func:`load_classifier` then
    says how to train one)."""
    if label_set not in (1, 2):
        raise ValueError(f"label_set must be 1 or 2, got {label_set!r}")
    return find_asset_file(*(CLASSIFIER_PARTS if label_set == 1 else CLASSIFIER_V2_PARTS), WEIGHTS_NAME)


# ======================================================================================================================
# Network
# ======================================================================================================================


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class AttributeClassifier(nn.Module):
    """CNN: 64x64 RGB render -> colour logits (multi-label) and pattern logits (single label).

    Layout: a 5x5 stride-2 stem (64 -> 32 px), then per entry of ``channels[1:]`` a 3x3 stride-2 convolution and a 3x3
    convolution (32 -> 16 -> 8 -> 4 px), each followed by BatchNorm and ReLU; global average and global max pooling
    concatenated (max pooling keeps small features such as dots or a thin second colour); a hidden layer of
    ``hidden`` units; one linear layer giving ``len(colors) + len(patterns)`` logits.

    Args:
        channels: feature channels of the stem and of each stage.
        hidden: width of the hidden layer of the head.
        colors: colour words of the colour head (default :data:`COLOR_NAMES`).
        patterns: pattern words of the pattern head (default :data:`csdtex.tinyprior.vocabulary.PATTERNS`).

    Shapes: ``forward(x float32 [N, 3, 64, 64], normalized as by :meth:`preprocess`) -> (color_logits float32
    [N, C], pattern_logits float32 [N, P])`` with C = len(colors) = 12 and P = len(patterns) = 6.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 96, 128),
        hidden: int = 192,
        colors: Sequence[str] = COLOR_NAMES,
        patterns: Sequence[str] = PATTERNS,
    ) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.hidden = int(hidden)
        self.colors = tuple(colors)
        self.patterns = tuple(patterns)
        layers = _conv(3, self.channels[0], 5, 2)
        previous = self.channels[0]
        for width in self.channels[1:]:
            layers += _conv(previous, width, 3, 2) + _conv(width, width, 3, 1)
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * previous, self.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden, len(self.colors) + len(self.patterns)),
        )

    def config(self) -> dict[str, Any]:
        """JSON-ready architecture description (the constructor's arguments)."""
        return {"channels": list(self.channels), "hidden": self.hidden, "colors": list(self.colors),
                "patterns": list(self.patterns)}

    @staticmethod
    def preprocess(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """Images -> network input.

        Args:
            images: [N, H, W, 3] RGB (row 0 = top), uint8 in [0, 255] or float in [0, 1]; numpy or torch. A single
                image [H, W, 3] is taken as N = 1.
            device: where to put the result (default: the input's device for tensors, CPU for numpy arrays).
        Returns:
            float32 [N, 3, 64, 64] in [-1, 1] (channels-last memory format), resized with area interpolation when H
            or W is not 64.
        """
        x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
        if device is not None:
            x = x.to(device)
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3] RGB, got shape {tuple(x.shape)}")
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        x = x.permute(0, 3, 1, 2)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="area")
        return (x * 2.0 - 1.0).contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits for a preprocessed batch: x float32 [N, 3, 64, 64] in [-1, 1] -> (colour logits [N, 12], pattern
        logits [N, 6]); apply sigmoid to the first and softmax to the second."""
        features = self.features(x)
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        logits = self.head(pooled)
        return logits[:, : len(self.colors)], logits[:, len(self.colors) :]


# ======================================================================================================================
# Weights on disk: safetensors + JSON
# ======================================================================================================================


def save_classifier(
    model: AttributeClassifier, path: str | os.PathLike, extra: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``model`` as ``path`` (safetensors) and ``attributes.json`` next to it.

    Floating-point tensors of the state dict are stored as float16 (half the size; the network still computes in
    float32 after :func:`load_classifier`, which upcasts them), integer tensors as they are.

    Args:
        model: the classifier (any device; tensors are copied to the CPU).
        path: the ``.safetensors`` file to write (its folder is created); the JSON config is written to the same
            folder as :data:`CONFIG_NAME`.
        extra: JSON-ready data merged into the config (the training script stores its record under ``"training"``).
    Returns:
        (weights path, config path). Both files are written atomically.
    """
    from safetensors.torch import save

    from csdtex.fileio import write_bytes_atomic, write_text_atomic

    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    write_bytes_atomic(path, save(tensors, metadata={"format": "pt", "config": CONFIG_NAME}))
    config = {"weights": path.name, "weights_dtype": "float16 (computed in float32)", "architecture": model.config(),
              "input_size": INPUT_SIZE,
              "input": "RGB [N, 64, 64, 3], uint8 or float in [0, 1], mapped to [-1, 1]",
              "color_head": "multi-label sigmoid over architecture.colors",
              "pattern_head": "softmax over architecture.patterns"}
    config.update(extra or {})
    config_path = write_text_atomic(path.parent / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return path, config_path


def load_classifier(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> AttributeClassifier:
    """Load a classifier saved by :func:`save_classifier`, in eval mode.

    Args:
        path: the ``.safetensors`` file, or the folder holding it (default: :func:`default_weights_path`, the shipped
            classifier of a source checkout or an installed wheel). The architecture is read from ``attributes.json``
            in the same folder.
        device: where to put the network.
    Returns:
        :class:`AttributeClassifier` in eval mode, gradients off; its ``patterns`` are the stored label set
        (version 1 or 2 of :data:`LABEL_SETS`).
    Raises:
        FileNotFoundError: the weights or the JSON config are missing (the message names the training script).
        ValueError: the stored colours differ from :data:`COLOR_NAMES` or the patterns from every label set.
    """
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights_path()
    if path.is_dir():
        path = path / WEIGHTS_NAME
    config_path = path.parent / CONFIG_NAME
    for needed in (path, config_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"attribute classifier file {needed} is missing: train one with "
                "`python benchmarks/train_attribute_classifier.py` (writes assets/classifier/)"
            )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    architecture = config["architecture"]
    if tuple(architecture["colors"]) != COLOR_NAMES or tuple(architecture["patterns"]) not in LABEL_SETS.values():
        raise ValueError(f"{config_path} was trained for another vocabulary than csdtex.tinyprior's; retrain it")
    model = AttributeClassifier(architecture["channels"], architecture["hidden"], architecture["colors"],
                                architecture["patterns"])
    model.load_state_dict(load_file(str(path)))  # float16 on disk -> copied into the float32 parameters
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    model.requires_grad_(False)
    return model


_DEFAULT: dict[str, AttributeClassifier] = {}


def _default_classifier(device: torch.device | str) -> AttributeClassifier:
    key = str(torch.device(device))
    if key not in _DEFAULT:
        _DEFAULT[key] = load_classifier(None, device)
    return _DEFAULT[key]


# ======================================================================================================================
# Prediction and scoring
# ======================================================================================================================


@torch.no_grad()
def predict_probabilities(
    images: np.ndarray | torch.Tensor,
    classifier: AttributeClassifier | None = None,
    batch: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image probabilities.

    Args:
        images: [N, H, W, 3] RGB (row 0 = top), uint8 in [0, 255] or float in [0, 1] (see
            :meth:`AttributeClassifier.preprocess`).
        classifier: the network (default: the shipped one, loaded once per device, on the CPU).
        batch: images per forward pass.
    Returns:
        (color_probs float32 [N, 12] in [0, 1], independent sigmoids in :data:`COLOR_NAMES` order;
        pattern_probs float32 [N, 6] in [0, 1], rows summing to 1, in :data:`csdtex.tinyprior.vocabulary.PATTERNS`
        order).
    """
    model = classifier if classifier is not None else _default_classifier("cpu")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    colors, patterns = [], []
    try:
        for start in range(0, len(images), batch):
            x = AttributeClassifier.preprocess(images[start : start + batch], device)
            color_logits, pattern_logits = model(x)
            colors.append(torch.sigmoid(color_logits).float().cpu())
            patterns.append(torch.softmax(pattern_logits.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    if not colors:
        return np.zeros((0, len(model.colors)), np.float32), np.zeros((0, len(model.patterns)), np.float32)
    return torch.cat(colors).numpy(), torch.cat(patterns).numpy()


def top_colors(color_probs: np.ndarray, k: int, colors: Sequence[str] = COLOR_NAMES) -> tuple[str, ...]:
    """The ``k`` most probable colour words of one prediction, most probable first.

    Args:
        color_probs: float [C] probabilities (or logits; only the order matters) in ``colors`` order.
        k: how many colours (1 <= k <= C).
        colors: the colour words of the columns.
    """
    order = np.argsort(-np.asarray(color_probs, dtype=np.float64), kind="stable")[: int(k)]
    return tuple(colors[int(i)] for i in order)


def colors_correct(color_probs: np.ndarray, target_colors: Sequence[str], colors: Sequence[str] = COLOR_NAMES) -> bool:
    """The colour scoring rule: the top-k predicted colours equal the target set, k = number of distinct targets.

    Args:
        color_probs: float [C] colour probabilities of one object (e.g. :attr:`AttributePrediction.color_probs`).
        target_colors: the colour words the prompt names (1 or 2; duplicates count once; order ignored).
        colors: the colour words of the columns (default :data:`COLOR_NAMES`).
    Returns:
        True when ``set(top_colors(color_probs, k)) == set(target_colors)``.
    Raises:
        ValueError: no target colour, or a word not in ``colors``.
    """
    wanted = set(target_colors)
    if not wanted:
        raise ValueError("target_colors is empty")
    unknown = wanted - set(colors)
    if unknown:
        raise ValueError(f"unknown colour word(s) {sorted(unknown)}: choose from {tuple(colors)}")
    return set(top_colors(color_probs, len(wanted), colors)) == wanted


def pattern_correct(pattern_probs: np.ndarray, target_pattern: str, patterns: Sequence[str] = PATTERNS) -> bool:
    """The pattern scoring rule: the most probable pattern (argmax of ``pattern_probs`` float [P]) is
    ``target_pattern``."""
    if target_pattern not in patterns:
        raise ValueError(f"unknown pattern {target_pattern!r}: choose from {tuple(patterns)}")
    return patterns[int(np.argmax(pattern_probs))] == target_pattern


def color_targets(color_sets: Sequence[Sequence[str]], colors: Sequence[str] = COLOR_NAMES) -> np.ndarray:
    """Multi-hot training targets: float32 [N, C] in {0, 1}, row n = 1 at the colours of ``color_sets[n]``."""
    index = {name: i for i, name in enumerate(colors)}
    targets = np.zeros((len(color_sets), len(colors)), np.float32)
    for row, names in enumerate(color_sets):
        for name in names:
            targets[row, index[name]] = 1.0
    return targets


@dataclass
class AttributePrediction:
    """What the classifier sees on one object (averaged over its views).

    Attributes:
        color_probs: float32 [12] in [0, 1], mean over views of the per-view sigmoid probabilities, in
            :data:`COLOR_NAMES` order.
        pattern_probs: float32 [P] in [0, 1] summing to 1, mean over views of the per-view softmax, in ``patterns``
            order (P = 6 for the shipped classifier).
        num_views: how many views were averaged.
        patterns: the pattern words of the classifier's head (default :data:`csdtex.tinyprior.vocabulary.PATTERNS`;
            a label-set-2 classifier has :data:`csdtex.tinyprior.vocabulary.PATTERNS_V2`).
    """

    color_probs: np.ndarray
    pattern_probs: np.ndarray
    num_views: int
    patterns: tuple[str, ...] = tuple(PATTERNS)

    @property
    def pattern(self) -> str:
        """The most probable pattern word."""
        return self.patterns[int(np.argmax(self.pattern_probs))]

    def top_colors(self, k: int) -> tuple[str, ...]:
        """The ``k`` most probable colour words, most probable first."""
        return top_colors(self.color_probs, k)

    def score(self, target_colors: Sequence[str], target_pattern: str) -> dict[str, Any]:
        """Score against a prompt's attributes (see :func:`colors_correct`, :func:`pattern_correct`).

        Returns:
            ``{"color_correct": bool, "pattern_correct": bool, "predicted_colors": the top-k colour words (k = number
            of distinct target colours), "predicted_pattern": word}``.
        """
        k = len(set(target_colors))
        return {
            "color_correct": colors_correct(self.color_probs, target_colors),
            "pattern_correct": pattern_correct(self.pattern_probs, target_pattern, self.patterns),
            "predicted_colors": list(self.top_colors(k)),
            "predicted_pattern": self.pattern,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: colour and pattern probabilities by name (rounded to 4 decimals) and ``num_views``."""
        return {
            "color_probs": {c: round(float(p), 4) for c, p in zip(COLOR_NAMES, self.color_probs)},
            "pattern_probs": {p: round(float(v), 4) for p, v in zip(self.patterns, self.pattern_probs)},
            "num_views": self.num_views,
        }


def classify_views(
    frames: np.ndarray | torch.Tensor, classifier: AttributeClassifier | None = None
) -> AttributePrediction:
    """Classify one object from several views (e.g. turntable frames) by averaging per-view probabilities.

    Args:
        frames: [N, H, W, 3] RGB views of the same object (row 0 = top), uint8 in [0, 255] or float in [0, 1];
            N >= 1. 64x64 albedo renders over white match the benchmark; other sizes are resized.
        classifier: the network (default: the shipped one on the CPU, loaded once).
    Returns:
        :class:`AttributePrediction` with the colour probabilities (float32 [12]) and pattern probabilities
        (float32 [P], P = 6 or 10 by the classifier's label set) averaged over the N views.
    """
    if len(frames) == 0:
        raise ValueError("classify_views needs at least one frame")
    model = classifier if classifier is not None else _default_classifier("cpu")
    color_probs, pattern_probs = predict_probabilities(frames, model)
    return AttributePrediction(color_probs.mean(axis=0), pattern_probs.mean(axis=0), int(len(frames)),
                               tuple(model.patterns))
