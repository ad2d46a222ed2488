"""The closed vocabulary of tiny priors: stored in the prior folder's config, read at load time, and the unknown-word
warning (csdtex.guidance.vocabulary), including non-Latin words and emoji."""

from __future__ import annotations

import json
import shutil

import pytest

from csdtex.assets import builtin_prior_folder
from csdtex.guidance import load_prior_from_folder
from csdtex.guidance.vocabulary import (
    Vocabulary,
    prompt_words,
    read_vocabulary,
    unknown_words,
    unknown_words_message,
)

CONFIG = "tiny_prior_config.json"


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    """The built-in prior's vocabulary, read from its shipped config (no model loaded)."""
    vocabulary = read_vocabulary(json.loads((builtin_prior_folder() / CONFIG).read_text()))
    assert isinstance(vocabulary, Vocabulary)
    return vocabulary


def test_shipped_config_carries_the_training_vocabulary(vocabulary):
    from csdtex import tinyprior

    assert vocabulary == frozenset(tinyprior.VOCABULARY)
    assert vocabulary.groups == {name: tuple(words) for name, words in tinyprior.vocabulary_groups().items()}
    config = json.loads((builtin_prior_folder() / CONFIG).read_text())
    assert config["vocabulary"] == sorted(tinyprior.VOCABULARY)
    # the architecture is the default one; the second built-in prior was initialized with neighbour heads in its text
    # encoder's position bias (an initialization setting, recorded in the config)
    shipped = tinyprior.TinyPriorConfig(text_neighbour_bias=4.0)
    assert tinyprior.read_config(builtin_prior_folder()) == shipped


def test_write_vocabulary_reproduces_the_shipped_config(tmp_path):
    """The documented script step (python -m csdtex.tinyprior write-vocabulary) gives the shipped file byte for byte."""
    from csdtex.tinyprior.__main__ import main

    source = builtin_prior_folder()
    folder = tmp_path / "prior"
    shutil.copytree(source / "tokenizer", folder / "tokenizer")
    config = json.loads((source / CONFIG).read_text())
    without = {k: v for k, v in config.items() if k not in ("vocabulary", "vocabulary_groups")}
    (folder / CONFIG).write_text(json.dumps(without, indent=2) + "\n")
    assert main(["write-vocabulary", str(folder)]) == 0
    assert (folder / CONFIG).read_bytes() == (source / CONFIG).read_bytes()
    assert main(["write-vocabulary", str(tmp_path / "nowhere")]) == 2


def test_prompt_words_keep_whole_unicode_words_and_emoji():
    assert prompt_words("A red box, side view") == ["a", "red", "box", ",", "side", "view"]
    assert prompt_words("ein grüner Würfel!") == ["ein", "grüner", "würfel", "!"]
    assert prompt_words("红色的球。") == ["红色的球", "。"]
    assert prompt_words("a 🔴 ball, ❤️ and 👨‍👩‍👧") == ["a", "🔴", "ball", ",", "❤️", "and", "👨‍👩‍👧"]
    assert prompt_words("  ") == []


def test_unknown_word_message_names_whole_words(vocabulary):
    assert unknown_words("ein grüner Würfel", vocabulary) == ["ein", "grüner", "würfel"]
    message = unknown_words_message("ein grüner Würfel", vocabulary)
    assert message.startswith("the built-in prior does not know 'ein', 'grüner', 'würfel' (ignored as <unk>)")
    assert "'ü'" not in message and "'gr'" not in message
    message = unknown_words_message("红色的球", vocabulary)
    assert "does not know '红色的球' (ignored" in message and "'红'" not in message
    message = unknown_words_message("a red 🎈 box", vocabulary)
    assert "does not know '🎈' (ignored" in message
    assert unknown_words_message("a red box, side view!", vocabulary) is None  # punctuation is not reported
    assert unknown_words("a red vase. a red vase", vocabulary) == ["vase", "."]


def test_message_text_of_the_builtin_prior_is_unchanged(vocabulary):
    assert unknown_words_message("a blue bronze vase", vocabulary) == (
        "the built-in prior does not know 'bronze', 'vase' (ignored as <unk>); it knows only colours (black, blue, "
        "brown, cyan, gray, green, orange, pink, purple, red, white, yellow), shapes (box, capsule, cone, cylinder, "
        "object, sphere, torus) and the words a, an, and, back, bottom, checkerboard, checkered, diagonal, dots, "
        "dotted, front, gradient, horizontal, is, on, overhead, pattern, side, solid, striped, stripes, that, the, "
        "to, top, vertical, view, with. For other prompts use a real prior on a GPU (--model sd21 or a local "
        "diffusers folder)"
    )


def test_vocabulary_without_groups_lists_the_words_once():
    message = unknown_words_message("a green cube", frozenset({"a", "red", "cube", ","}))
    assert message.startswith("the built-in prior does not know 'green' (ignored as <unk>); it knows only the words "
                              "a, cube, red. For other prompts")  # fmt: skip
    grouped = Vocabulary({"a", "red", "cube"}, {"colours": ["red", "blue"]})
    assert grouped == frozenset({"a", "red", "cube"}) and grouped.groups == {"colours": ("red",)}
    assert "it knows only colours (red) and the words a, cube." in unknown_words_message("a pink cube", grouped)


def test_read_vocabulary_rejects_malformed_entries():
    assert read_vocabulary({"text_width": 128}) is None
    with pytest.raises(ValueError):
        read_vocabulary({"vocabulary": "red blue"})
    with pytest.raises(ValueError):
        read_vocabulary({"vocabulary": ["red"], "vocabulary_groups": {"colours": "red"}})


def test_loading_reads_the_vocabulary_from_the_config(tmp_path):
    """The loader takes Prior.vocabulary from the config; a folder saved before the config had it falls back to the
    words of its tokenizer (without groups)."""
    folder = tmp_path / "tiny"
    shutil.copytree(builtin_prior_folder(), folder, ignore=shutil.ignore_patterns("*.png", "README.md"))
    config = json.loads((folder / CONFIG).read_text())
    config["vocabulary"] = sorted(set(config["vocabulary"]) - {"cyan"})
    (folder / CONFIG).write_text(json.dumps(config))
    prior = load_prior_from_folder(folder)
    assert prior.preset == "tiny" and "cyan" not in prior.vocabulary and "red" in prior.vocabulary
    assert "cyan" not in prior.vocabulary.groups["colours"]

    del config["vocabulary"], config["vocabulary_groups"]
    (folder / CONFIG).write_text(json.dumps(config))
    prior = load_prior_from_folder(folder)
    assert "cyan" in prior.vocabulary and not isinstance(prior.vocabulary, Vocabulary)
    assert {"red", "striped", ","} <= prior.vocabulary and "<unk>" not in prior.vocabulary
