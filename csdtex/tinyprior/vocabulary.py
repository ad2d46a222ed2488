"""The closed vocabulary of the built-in prior: colour, pattern and shape words, caption templates, caption words.

Every caption of the synthetic training data (:mod:`csdtex.tinyprior.synthetic`) is built from the templates here
(see :meth:`csdtex.tinyprior.textures.TextureSpec.caption`), so :data:`VOCABULARY` is every word the prior can know;
its tokenizer (:func:`csdtex.tinyprior.model.build_tokenizer`) has one token per entry, and the saved prior folder
carries the list in its ``tiny_prior_config.json`` (:func:`prior_vocabulary_entries`), where the paint run's
unknown-word warning (:mod:`csdtex.guidance.vocabulary`) reads it without importing this package.

Public API: :data:`COLORS`, :data:`PATTERNS`, :data:`SHAPES`, :data:`GENERIC_NOUN`, :data:`STRIPE_DIRECTIONS`,
:data:`CAPTION_TEMPLATES`, :data:`NUM_TEMPLATES`, :data:`VOCABULARY`, :data:`VIEW_SUFFIXES`, :func:`caption_words`,
:func:`unknown_words`, :func:`vocabulary_groups`, :func:`prior_vocabulary_entries`.

Data version 2 (issue #15; the constants above are version 1's and unchanged): :data:`MATERIALS`,
:data:`PATTERNS_V2`, :data:`ONE_COLOR_PATTERNS`, :data:`SHAPE_NOUNS_V2`, :data:`ROLE_PATTERNS`,
:data:`CAPTION_TEMPLATES_V2`, :data:`DIRECTION_TEMPLATES`, :data:`VOCABULARY_V2`, :data:`DATA_VERSIONS`,
:func:`vocabulary_for`, :func:`patterns_for`, :func:`nouns_for`, :func:`caption_templates_for`.

Data version 3 is version 1's data in which a share of the objects wear a material; its captions are version 1's
captions plus version 2's material captions on version-1 nouns, so its vocabulary (:data:`VOCABULARY_V3`) is
:data:`VOCABULARY` plus the handful of material words, and its templates (:data:`CAPTION_TEMPLATES_V3`) are version
1's plus the material ones.

Colour roles of a caption (the built-in prior's word-order training signal, issue #15): :data:`ROLE_LABELLED_PATTERNS`,
:data:`NO_ROLE`, :func:`caption_color_roles`.
"""

from __future__ import annotations

import functools
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


# ======================================================================================================================
# Data version 2 (issue #15): materials, more shape nouns, role-bearing caption templates
# ======================================================================================================================

MATERIALS: dict[str, tuple[str, ...]] = {
    "wood": ("brown", "orange", "yellow", "red", "white", "gray", "black"),
    "marble": ("white", "gray", "black", "green", "pink", "brown"),
    "brick": ("red", "brown", "orange", "gray", "white", "yellow"),
    "camouflage": ("green", "brown", "gray", "blue", "pink", "purple"),
}
"""Data version 2's material patterns (procedural 3D textures of :mod:`csdtex.tinyprior.textures`) and, per material,
its *typical* colour words (drawn more often; any colour of :data:`COLORS` is allowed). A material takes one colour
word, the main colour: wood = rings and grain in that colour and a darker shade, marble = that colour with veins of
a darker (or, for dark colours, lighter) shade, brick = bricks of that colour with light mortar joints, camouflage =
blotches of three shades of that colour."""

PATTERNS_V2: tuple[str, ...] = PATTERNS + tuple(MATERIALS)
"""Data version 2's patterns: :data:`PATTERNS` (same order, same meaning) then the materials of :data:`MATERIALS`.
``solid`` and the materials use one colour, the others two."""

ONE_COLOR_PATTERNS: frozenset[str] = frozenset(("solid",) + tuple(MATERIALS))
"""Patterns that take one colour word (all others take two)."""

SHAPE_NOUNS_V2: tuple[str, ...] = ("tube", "bowl", "cup", "vase", "table", "chair", "creature")
"""Nouns of data version 2's new shape families (:mod:`csdtex.tinyprior.shapes_v2`); its captions use these and the
:data:`SHAPES` words (the version-1 primitives stay in the data) or :data:`GENERIC_NOUN`."""

ROLE_PATTERNS: tuple[str, ...] = ("stripes", "dots", "gradient", "halves")
"""Patterns whose captions bind a role: dots (base colour vs dot colour), gradient and halves (top colour vs bottom
colour), stripes (direction). Data version 2 draws contrasting pairs of these (see
:func:`csdtex.tinyprior.textures.contrast_partner`)."""

CAPTION_TEMPLATES_V2: dict[str, tuple[str, ...]] = {
    "solid": ("a {c0} {noun}", "a solid {c0} {noun}"),
    "stripes": (
        "a {c0} and {c1} striped {noun}",
        "a {noun} with {c0} and {c1} {direction} stripes",
        "a {c0} and {c1} {direction} striped {noun}",
        "{direction} {c0} and {c1} stripes on a {noun}",
    ),
    "checkerboard": ("a {c0} and {c1} checkered {noun}", "a {noun} with a {c0} and {c1} checkerboard pattern"),
    "dots": ("a {c0} {noun} with {c1} dots", "a {c0} and {c1} dotted {noun}", "{c1} dots on a {c0} {noun}"),
    "gradient": (
        "a {noun} with a {c0} to {c1} gradient",
        "a {c0} to {c1} gradient {noun}",
        "a {noun} with a {c0} to {c1} gradient from top to bottom",
        "a {noun} with a {c1} to {c0} gradient from bottom to top",
    ),
    "halves": (
        "a {noun} with a {c0} top and a {c1} bottom",
        "a {noun} that is {c0} on top and {c1} on the bottom",
        "a {noun} with a {c1} bottom and a {c0} top",
        "a {noun} that is {c1} on the bottom and {c0} on top",
    ),
    "wood": ("a {c0} wooden {noun}", "a {noun} made of {c0} wood"),
    "marble": ("a {c0} marble {noun}", "a {noun} made of {c0} marble"),
    "brick": ("a {c0} brick {noun}", "a {noun} made of {c0} bricks"),
    "camouflage": ("a {c0} camouflage {noun}", "a {noun} with a {c0} camouflage pattern"),
}
"""Caption templates of data version 2, per pattern (keys = :data:`PATTERNS_V2`). The role is always bound the same
way whatever the word order: ``{c0}`` is the base colour of dots, the top colour of gradients and halves and the
first stripe / cell colour, ``{c1}`` the dot colour / bottom colour; so "a {noun} with a {c1} bottom and a {c0} top"
describes the same texture as template 0 of halves with the words in the other order, and "{c1} dots on a {c0}
{noun}" the same as "a {c0} {noun} with {c1} dots". Templates 0 and 1 of the version-1 patterns are the version-1
templates. Template indices that name a stripe direction: :data:`DIRECTION_TEMPLATES`."""

DIRECTION_TEMPLATES: tuple[int, ...] = (1, 2, 3)
"""Indices of the stripe templates of :data:`CAPTION_TEMPLATES_V2` that name the direction."""


def _vocabulary_v2() -> tuple[str, ...]:
    words: set[str] = set(VOCABULARY) | set(SHAPE_NOUNS_V2)
    for templates in CAPTION_TEMPLATES_V2.values():
        for template in templates:
            words.update(caption_words(re.sub(r"\{[a-z0-9]+\}", " ", template)))
    return tuple(sorted(words))


VOCABULARY_V2: tuple[str, ...] = _vocabulary_v2()
"""Every word of data version 2's captions, sorted: :data:`VOCABULARY` plus :data:`SHAPE_NOUNS_V2`, the material
words (wooden, wood, marble, brick, bricks, camouflage, made, of) and the glue words of the new templates (from,
...)."""

# ======================================================================================================================
# Data version 3: version 1 plus a share of material objects
# ======================================================================================================================

CAPTION_TEMPLATES_V3: dict[str, tuple[str, ...]] = {
    **CAPTION_TEMPLATES,
    **{material: CAPTION_TEMPLATES_V2[material] for material in MATERIALS},
}
"""Caption templates of data version 3, per pattern (keys = :data:`PATTERNS` then the :data:`MATERIALS`): version 1's
:data:`CAPTION_TEMPLATES` unchanged, plus version 2's material templates (``"a {c0} wooden {noun}"``, ``"a {noun}
made of {c0} wood"``, ...). Version 3's material objects are captioned with
:meth:`csdtex.tinyprior.textures.TextureSpec.caption` ``(..., version=2)``, which picks exactly these; every other
caption is a version-1 caption."""


def _vocabulary_v3() -> tuple[str, ...]:
    words: set[str] = set(VOCABULARY)
    for material in MATERIALS:
        for template in CAPTION_TEMPLATES_V3[material]:
            words.update(caption_words(re.sub(r"\{[a-z0-9]+\}", " ", template)))
    return tuple(sorted(words))


VOCABULARY_V3: tuple[str, ...] = _vocabulary_v3()
"""Every word of data version 3's captions, sorted: :data:`VOCABULARY` plus the words the material templates add
(brick, bricks, camouflage, made, marble, of, wood, wooden); the colours, the version-1 nouns and the view suffixes
a material caption carries are version 1's."""

MATERIAL_WORDS: tuple[str, ...] = ("brick", "bricks", "camouflage", "marble", "wood", "wooden")
"""The material words of data versions 2 and 3's captions (the unknown-word warning lists them as a group): the words
:data:`VOCABULARY_V3` adds to :data:`VOCABULARY` except the function words "made" and "of"."""

DATA_VERSIONS: tuple[int, ...] = (1, 2, 3)
"""Data versions: 1 = the shipped prior's data (v1 vocabulary, templates, primitives), 2 = issue #15's data, 3 =
version 1's data with a share of its objects repainted with a material and captioned with the material's words
(:func:`csdtex.tinyprior.synthetic.generate_dataset`)."""


def _check_version(data_version: int) -> None:
    if data_version not in DATA_VERSIONS:
        raise ValueError(f"data_version must be one of {DATA_VERSIONS}, got {data_version!r}")


def vocabulary_for(data_version: int = 1) -> tuple[str, ...]:
    """The caption vocabulary of ``data_version``: a sorted tuple of str (1: :data:`VOCABULARY`, 48 words; 2:
    :data:`VOCABULARY_V2`; 3: :data:`VOCABULARY_V3`). Raises ValueError outside :data:`DATA_VERSIONS`."""
    _check_version(data_version)
    return {1: VOCABULARY, 2: VOCABULARY_V2, 3: VOCABULARY_V3}[data_version]


def patterns_for(data_version: int = 1) -> tuple[str, ...]:
    """The pattern words of ``data_version``, a tuple of str (1: :data:`PATTERNS`; 2 and 3: :data:`PATTERNS_V2`,
    i.e. :data:`PATTERNS` then the materials). Raises ValueError outside :data:`DATA_VERSIONS`."""
    _check_version(data_version)
    return PATTERNS if data_version == 1 else PATTERNS_V2


def nouns_for(data_version: int = 1) -> tuple[str, ...]:
    """The shape nouns of ``data_version``'s captions, a tuple of str without :data:`GENERIC_NOUN` (1 and 3:
    :data:`SHAPES`; 2: :data:`SHAPES` + :data:`SHAPE_NOUNS_V2`). Raises ValueError outside :data:`DATA_VERSIONS`."""
    _check_version(data_version)
    return SHAPES + SHAPE_NOUNS_V2 if data_version == 2 else SHAPES


def caption_templates_for(data_version: int = 1) -> dict[str, tuple[str, ...]]:
    """The caption templates of ``data_version``, pattern -> tuple of template strings (1: :data:`CAPTION_TEMPLATES`;
    2: :data:`CAPTION_TEMPLATES_V2`; 3: :data:`CAPTION_TEMPLATES_V3`). Raises ValueError outside
    :data:`DATA_VERSIONS`."""
    _check_version(data_version)
    return {1: CAPTION_TEMPLATES, 2: CAPTION_TEMPLATES_V2, 3: CAPTION_TEMPLATES_V3}[data_version]


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
    sorted, restricted to ``words`` (default :data:`VOCABULARY`); the shapes include :data:`GENERIC_NOUN` (and the
    data-version-2 nouns :data:`SHAPE_NOUNS_V2` when ``words`` has them); a third group ``"materials"``
    (:data:`MATERIAL_WORDS`) only when ``words`` has any of them."""
    known = set(VOCABULARY if words is None else words)
    groups = {
        "colours": sorted(w for w in known if w in COLORS),
        "shapes": sorted(w for w in known if w in SHAPES or w in SHAPE_NOUNS_V2 or w == GENERIC_NOUN),
    }
    materials = sorted(w for w in known if w in MATERIAL_WORDS)
    if materials:
        groups["materials"] = materials
    return groups


def prior_vocabulary_entries(words: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``tiny_prior_config.json`` entries for a prior that knows ``words`` (default :data:`VOCABULARY`):
    ``{"vocabulary": sorted words, "vocabulary_groups": {"colours": [...], "shapes": [...], ...}}`` (see
    :mod:`csdtex.guidance.vocabulary`)."""
    words = list(VOCABULARY if words is None else words)
    return runtime_vocabulary.vocabulary_entries(words, vocabulary_groups(words))


# ======================================================================================================================
# Colour roles of a caption (issue #15: word order)
# ======================================================================================================================

NO_ROLE = -1
"""Role label of a word that is not a colour with a role (:func:`caption_color_roles`)."""

ROLE_LABELLED_PATTERNS: frozenset[str] = frozenset(("dots", "gradient", "halves", "solid") + tuple(MATERIALS))
"""Patterns whose colour words get a role label in :func:`caption_color_roles`: the two colours of dots (base /
dots), gradients and halves (top / bottom) play visibly different parts, and the one colour of solid and material
captions is the base colour. Stripes and checkerboards are left out: which of their two colours is named first does
not change how the texture looks (a stripe direction is a word of its own)."""


def _template_words(template: str) -> list[str]:
    """A caption template split like a caption, keeping the placeholders (``{c0}``, ``{noun}``) as words."""
    return re.findall(r"\{[a-z0-9]+\}|[a-z]+|[^\sa-z{}]", template)


@functools.lru_cache(maxsize=None)
def _role_templates(data_version: int) -> dict[int, tuple[tuple[str, tuple[str, ...]], ...]]:
    """(pattern, template words) of ``data_version``'s caption templates, keyed by their number of words."""
    templates = caption_templates_for(data_version)
    by_length: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
    for pattern, group in templates.items():
        for template in group:
            words = tuple(_template_words(template))
            by_length.setdefault(len(words), []).append((pattern, words))
    return {length: tuple(entries) for length, entries in by_length.items()}


def caption_color_roles(caption: str, data_version: int = 1) -> list[int]:
    """The role of every word of a training caption: 0 = the base colour (dots' base, the top of a gradient or of
    halves, the colour of a solid or material object), 1 = the second colour (the dots, the bottom), :data:`NO_ROLE`
    for every other word.

    The caption is split with :func:`caption_words` (so position ``i`` of the result is word ``i``, and, with the
    tiny prior's one-token-per-word tokenizer, token ``i``) and matched word by word against every caption template
    of ``data_version`` (:func:`caption_templates_for`: for version 3, version 1's templates and the material
    templates, so a version-1 caption gets the labels it gets under version 1 and a material caption labels its
    colour 0) (``{c0}`` / ``{c1}`` match a colour word, ``{noun}`` a shape noun of :func:`nouns_for` or ``object``,
    ``{direction}`` a stripe direction, ``a`` also ``an``; a view suffix may follow). A caption that no template
    matches, that matches templates disagreeing on a role, or whose pattern is not in
    :data:`ROLE_LABELLED_PATTERNS` (stripes, checkerboard) gets :data:`NO_ROLE` everywhere, as does ``""``.

    Example: ``"blue dots on a red box, side view"`` -> ``[1, -1, -1, -1, 0, -1, -1, -1, -1]`` (``blue`` names the
    dots, ``red`` the base).

    Returns:
        list of ``len(caption_words(caption))`` ints, each 0, 1 or :data:`NO_ROLE` (-1). Raises ValueError when
        ``data_version`` is not in :data:`DATA_VERSIONS`.
    """
    words = caption_words(caption)
    roles = [NO_ROLE] * len(words)
    if not words:
        return roles
    nouns = frozenset(nouns_for(data_version) + (GENERIC_NOUN,))
    templates = _role_templates(data_version)
    candidates = list(templates.get(len(words), ()))
    for suffix in (caption_words(s) for s in VIEW_SUFFIXES):
        if len(words) > len(suffix) and words[-len(suffix):] == suffix:
            candidates += templates.get(len(words) - len(suffix), ())
    found: list[list[int]] = []
    for pattern, template in candidates:
        labels = [NO_ROLE] * len(words)
        for index, (slot, word) in enumerate(zip(template, words)):
            if slot in ("{c0}", "{c1}"):
                if word not in COLORS:
                    break
                labels[index] = 0 if slot == "{c0}" else 1
            elif slot == "{noun}":
                if word not in nouns:
                    break
            elif slot == "{direction}":
                if word not in STRIPE_DIRECTIONS:
                    break
            elif word != slot and not (slot == "a" and word == "an"):
                break
        else:
            found.append(labels if pattern in ROLE_LABELLED_PATTERNS else [NO_ROLE] * len(words))
    if not found or any(labels != found[0] for labels in found[1:]):
        return roles
    return found[0]
