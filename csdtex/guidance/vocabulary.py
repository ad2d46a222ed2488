"""Closed vocabularies of tiny priors and the warning about prompt words such a prior does not know.

csdtex's tiny priors (the built-in one, or one trained with ``benchmarks/train_prior.py``) tokenize whole words: every
word outside their word list becomes ``<unk>`` and is ignored. Their folder's ``tiny_prior_config.json`` carries that
list, so a paint run can warn about unknown words without any of the training code:

- ``"vocabulary"``: every word and punctuation mark the prior knows, sorted (JSON list of str);
- ``"vocabulary_groups"`` (optional): named groups of those words for the warning, in display order, e.g.
  ``{"colours": ["black", ...], "shapes": ["box", ...]}`` (JSON object of lists of str).

:func:`read_vocabulary` turns these entries into a :class:`Vocabulary` (what ``Prior.vocabulary`` holds) and
:func:`vocabulary_entries` makes them (what the training code writes).

Words of a prompt (:func:`prompt_words`): the prompt is lowercased (tiny priors lowercase prompts), then a *word* is a
maximal run of characters that are neither whitespace nor punctuation (Unicode categories ``P*``), so accented and
non-Latin words stay whole (``"grüner"``, ``"红色的球"``) and emoji are words too; every punctuation character is a
token of its own.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Collection, Iterable, Mapping

VOCABULARY_KEY = "vocabulary"
"""Key of the word list in a tiny prior's ``tiny_prior_config.json``."""

GROUPS_KEY = "vocabulary_groups"
"""Key of the named word groups in a tiny prior's ``tiny_prior_config.json``."""


class Vocabulary(frozenset):
    """The closed word list of a prior: a ``frozenset`` of lowercase words and punctuation marks, plus named groups.

    Behaves exactly like a frozenset of str (``"red" in vocabulary``, ``{"red", ","} <= vocabulary``); ``groups``
    only changes how :func:`unknown_words_message` lists the known words.

    Args:
        words: the words and punctuation marks.
        groups: group name -> words of that group, in display order (e.g. ``{"colours": [...], "shapes": [...]}``);
            words outside ``words`` are dropped.

    Attributes:
        groups: dict[str, tuple[str, ...]], each group's words sorted.
    """

    groups: dict[str, tuple[str, ...]]

    def __new__(cls, words: Iterable[str] = (), groups: Mapping[str, Iterable[str]] | None = None) -> Vocabulary:
        vocabulary = super().__new__(cls, words)
        vocabulary.groups = {
            str(name): tuple(sorted(w for w in set(members) if w in vocabulary))
            for name, members in (groups or {}).items()
        }
        return vocabulary

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words, groups {list(self.groups)})"


def is_punctuation(token: str) -> bool:
    """Whether ``token`` is a single punctuation character (Unicode category ``P*``: ``,``, ``.``, ``!``, ``。``...)."""
    return len(token) == 1 and unicodedata.category(token).startswith("P")


def prompt_words(prompt: str) -> list[str]:
    """Split a prompt into words and punctuation marks, in order, lowercased.

    A word is a maximal run of characters that are neither whitespace nor punctuation (Unicode-aware: letters of any
    script, digits, symbols and emoji, including their combining marks and joiners); every punctuation character is
    a token of its own. ``"A red box, side view"`` -> ``["a", "red", "box", ",", "side", "view"]``;
    ``"ein grüner Würfel!"`` -> ``["ein", "grüner", "würfel", "!"]``; ``"红色的球"`` -> ``["红色的球"]``.
    """
    tokens: list[str] = []
    word: list[str] = []
    for char in prompt.lower():
        if char.isspace() or is_punctuation(char):
            if word:
                tokens.append("".join(word))
                word = []
            if not char.isspace():
                tokens.append(char)
        else:
            word.append(char)
    if word:
        tokens.append("".join(word))
    return tokens


def unknown_words(prompt: str, vocabulary: Collection[str]) -> list[str]:
    """Words and punctuation marks of ``prompt`` (:func:`prompt_words`) outside ``vocabulary``.

    Args:
        prompt: any text.
        vocabulary: the known lowercase words and punctuation marks (e.g. ``Prior.vocabulary``).

    Returns:
        The unknown tokens, lowercased, in order of first appearance, without duplicates; e.g. ``["vase", "."]`` for
        ``"A red vase."`` with the built-in prior's vocabulary.
    """
    unknown: list[str] = []
    for token in prompt_words(prompt):
        if token not in vocabulary and token not in unknown:
            unknown.append(token)
    return unknown


def unknown_words_message(
    prompt: str, vocabulary: Collection[str], alternatives: Mapping[str, Collection[str]] | None = None
) -> str | None:
    """One-line warning naming the words of ``prompt`` a tiny prior does not know, and listing those it knows.

    Args:
        prompt: the prompt (or negative prompt).
        vocabulary: the prior's words (``Prior.vocabulary``); a :class:`Vocabulary` with groups lists its known words
            grouped (the built-in prior: colours, shapes, then the other words), any other collection lists them in one
            sorted list.
        alternatives: other priors the user could pass instead, ``--model`` value -> its words (e.g. the built-in
            priors, :func:`csdtex.guidance.loading.builtin_prior_vocabularies`); the message names those that know
            some of the unknown words (``"; --model tiny-materials knows 'wooden'"``).

    Returns:
        None when every word of ``prompt`` is known; otherwise the warning, e.g. ``"the built-in prior does not know
        'bronze', 'vase' (ignored as <unk>); it knows only colours (black, ...), shapes (box, ...) and the words a,
        an, .... For other prompts use a real prior on a GPU (--model sd21 or a local diffusers folder)"``. Unknown
        punctuation is not reported.
    """
    unknown = [w for w in unknown_words(prompt, vocabulary) if not is_punctuation(w)]
    if not unknown:
        return None
    words = sorted(w for w in vocabulary if not is_punctuation(w))
    groups = getattr(vocabulary, "groups", {}) or {}
    parts, grouped = [], set()
    for name, members in groups.items():
        listed = [w for w in words if w in set(members)]
        if listed:
            parts.append(f"{name} ({', '.join(listed)})")
            grouped.update(listed)
    other = [w for w in words if w not in grouped]
    if parts and other:
        known = f"{', '.join(parts)} and the words {', '.join(other)}"
    elif parts:
        known = ", ".join(parts)
    else:
        known = f"the words {', '.join(other)}"
    quoted = ", ".join(f"'{w}'" for w in unknown)
    suggestions = []
    for model, words in (alternatives or {}).items():
        knows = [f"'{w}'" for w in unknown if w in words]
        if knows:
            suggestions.append(f"--model {model} knows {', '.join(knows)}")
    return (
        f"the built-in prior does not know {quoted} (ignored as <unk>); it knows only {known}"
        + (f" ({'; '.join(suggestions)})" if suggestions else "")
        + ". For other prompts use a real prior on a GPU (--model sd21 or a local diffusers folder)"
    )


def tokenizer_words(tokenizer: Any) -> frozenset[str]:
    """The words of a whole-word tokenizer: its pieces (``"▁word"`` -> ``"word"``, punctuation pieces as they are),
    without special tokens such as ``<pad>``, ``</s>`` and ``<unk>``."""
    special = set(getattr(tokenizer, "all_special_tokens", []))
    words = set()
    for piece in tokenizer.get_vocab():
        if piece in special:
            continue
        words.add(piece[1:] if piece.startswith("\u2581") else piece)
    return frozenset(w for w in words if w)


def vocabulary_entries(words: Iterable[str], groups: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """The JSON-ready ``tiny_prior_config.json`` entries for a word list: ``{"vocabulary": sorted words,
    "vocabulary_groups": {name: sorted words of the group}}`` (groups restricted to ``words``; no groups key when
    ``groups`` is None)."""
    vocabulary = Vocabulary(words, groups)
    entries: dict[str, Any] = {VOCABULARY_KEY: sorted(vocabulary)}
    if groups is not None:
        entries[GROUPS_KEY] = {name: list(members) for name, members in vocabulary.groups.items()}
    return entries


def read_vocabulary(config: Mapping[str, Any]) -> Vocabulary | None:
    """The :class:`Vocabulary` stored in a parsed ``tiny_prior_config.json`` (see the module docstring), or None when
    it has no ``"vocabulary"`` entry (priors saved before csdtex stored it).

    Raises:
        ValueError: the entries are not a list of str / an object of lists of str.
    """
    words = config.get(VOCABULARY_KEY)
    if words is None:
        return None
    groups = config.get(GROUPS_KEY) or {}
    valid_groups = isinstance(groups, Mapping) and all(
        isinstance(members, list) and all(isinstance(w, str) for w in members) for members in groups.values()
    )
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or not valid_groups:
        raise ValueError(f"{VOCABULARY_KEY!r} must be a list of words and {GROUPS_KEY!r} an object of word lists")
    return Vocabulary(words, groups)
