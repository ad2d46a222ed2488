"""The closed vocabulary of the built-in prior: colour, pattern and shape words, caption templates, caption words.

Every caption of the synthetic training data (:mod:`csdtex.tinyprior.synthetic`) is built from the templates here
(see :meth:`csdtex.tinyprior.textures.TextureSpec.caption`), so :data:`VOCABULARY` is every word the prior can know;
its tokenizer (:func:`csdtex.tinyprior.model.build_tokenizer`) has one token per entry, and the saved prior folder
carries the list in its ``tiny_prior_config.json`` (:func:`prior_vocabulary_entries`), where the paint run's
unknown-word warning (:mod:`csdtex.guidance.vocabulary`) reads it without importing this package.

Public API: :data:`COLORS`, :data:`PATTERNS`, :data:`SHAPES`, :data:`GENERIC_NOUN`, :data:`STRIPE_DIRECTIONS`,
:data:`CAPTION_TEMPLATES`, :data:`NUM_TEMPLATES`, :data:`VOCABULARY`, :data:`VIEW_SUFFIXES`, :func:`caption_words`,
:func:`unknown_words`, :func:`vocabulary_groups`, :func:`prior_vocabulary_entries`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from csdtex.guidance import vocabulary as runtime_vocabulary
from csdtex.guidance.prompts import VIEW_SUFFIXES

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.98, 0.88, 0.12),
    "green": (0.12, 0.62, 0.18),
    "blue": (0.10, 0.25, 0.85),
    "purple": (0.50, 0.16, 0.66),
    "pink": (1.00, 0.55, 0.75),
    "brown": (0.50, 0.30, 0.12),
    "black": (0.05, 0.05, 0.05),
    "white": (0.97, 0.97, 0.97),
    "gray": (0.50, 0.50, 0.50),
    "cyan": (0.05, 0.80, 0.85),
}
"""The 12 colour words and their nominal linear RGB in [0, 1] (objects jitter each channel by ~N(0, 0.04))."""

PATTERNS: tuple[str, ...] = ("solid", "stripes", "checkerboard", "dots", "gradient", "halves")
"""Texture patterns. ``solid`` uses one colour, all others two (first = base / top, second = other / bottom)."""

SHAPES: tuple[str, ...] = ("sphere", "box", "cylinder", "cone", "torus", "capsule")
"""Primitive shapes (trimesh.creation); each is also the noun of its captions (or the generic ``"object"``)."""

GENERIC_NOUN = "object"
"""Noun used instead of the shape word in a share of captions, so that prompts about unseen meshes make sense."""

STRIPE_DIRECTIONS: tuple[str, ...] = ("horizontal", "vertical", "diagonal")
"""Stripe directions: horizontal = bands stacked along +Y; vertical = bands along a random horizontal axis;
diagonal = along a random axis at 45 degrees to +Y."""

CAPTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "solid": ("a {c0} {noun}", "a solid {c0} {noun}"),
    "stripes": ("a {c0} and {c1} striped {noun}", "a {noun} with {c0} and {c1} {direction} stripes"),
    "checkerboard": ("a {c0} and {c1} checkered {noun}", "a {noun} with a {c0} and {c1} checkerboard pattern"),
    "dots": ("a {c0} {noun} with {c1} dots", "a {c0} and {c1} dotted {noun}"),
    "gradient": ("a {noun} with a {c0} to {c1} gradient", "a {c0} to {c1} gradient {noun}"),
    "halves": ("a {noun} with a {c0} top and a {c1} bottom", "a {noun} that is {c0} on top and {c1} on the bottom"),
}
"""Caption templates per pattern: ``{c0}`` / ``{c1}`` are colour words, ``{noun}`` the shape word, ``{direction}`` a
stripe direction; "a" becomes "an" before a vowel. Template 0 is the short form."""

NUM_TEMPLATES = 2
"""Templates per pattern (indices 0 .. NUM_TEMPLATES - 1 for :meth:`csdtex.tinyprior.textures.TextureSpec.caption`)."""

_WORD = re.compile(r"[a-z]+|[^\sa-z]")


def caption_words(text: str) -> list[str]:
    """Split a caption into words and punctuation marks the way the vocabulary counts them.

    Lowercases, then returns maximal runs of letters a-z and every other non-space character on its own (so
    ``"a red box, side view"`` -> ``["a", "red", "box", ",", "side", "view"]``).
    """
    return _WORD.findall(text.lower())


def _vocabulary() -> tuple[str, ...]:
    words: set[str] = set(COLORS) | set(SHAPES) | {GENERIC_NOUN, "an"} | set(STRIPE_DIRECTIONS)
    for templates in CAPTION_TEMPLATES.values():
        for template in templates:
            words.update(caption_words(re.sub(r"\{[a-z0-9]+\}", " ", template)))
    for suffix in VIEW_SUFFIXES:
        words.update(caption_words(suffix))
    return tuple(sorted(words))


VOCABULARY: tuple[str, ...] = _vocabulary()
"""Every word (and punctuation mark) any caption can contain, sorted: colours, shapes, ``object``, pattern words,
stripe directions, template glue words (a, an, and, with, to, that, is, on, the, top, bottom, ...), view words and
``,``."""

VIEW_SUFFIXES = VIEW_SUFFIXES
"""Re-exported from :mod:`csdtex.guidance.prompts`: ``", front view"``, ``", side view"``, ``", back view"``,
``", overhead view"``."""


def unknown_words(prompt: str, words: Sequence[str] | None = None) -> list[str]:
    """Words and punctuation marks of ``prompt`` outside ``words`` (default :data:`VOCABULARY`), in order of first
    appearance, without duplicates.

    The prompt is split as the paint run's warning splits it (:func:`csdtex.guidance.vocabulary.prompt_words`:
    lowercased; whole Unicode words, every punctuation character on its own), so ``"A red vase."`` gives
    ``["vase", "."]``.
    """
    return runtime_vocabulary.unknown_words(prompt, frozenset(VOCABULARY if words is None else words))


def vocabulary_groups(words: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The word groups the unknown-word warning lists separately: ``{"colours": [...], "shapes": [...]}``, each
    sorted, restricted to ``words`` (default :data:`VOCABULARY`); the shapes include :data:`GENERIC_NOUN`."""
    known = set(VOCABULARY if words is None else words)
    return {
        "colours": sorted(w for w in known if w in COLORS),
        "shapes": sorted(w for w in known if w in SHAPES or w == GENERIC_NOUN),
    }


def prior_vocabulary_entries(words: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``tiny_prior_config.json`` entries for a prior that knows ``words`` (default :data:`VOCABULARY`):
    ``{"vocabulary": sorted words, "vocabulary_groups": {"colours": [...], "shapes": [...]}}`` (see
    :mod:`csdtex.guidance.vocabulary`)."""
    words = list(VOCABULARY if words is None else words)
    return runtime_vocabulary.vocabulary_entries(words, vocabulary_groups(words))
