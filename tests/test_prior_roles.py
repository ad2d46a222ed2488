"""Colour-role labels of training captions and the word-order loss of the built-in prior's training (issue #15)."""

import numpy as np
import pytest
import torch

from csdtex.tinyprior import vocabulary as V
from csdtex.tinyprior.model import build_tokenizer
from csdtex.tinyprior.textures import TextureSpec
from csdtex.tinyprior.training import IGNORE_ROLE, CaptionTable, RoleHead, role_loss


def _roles_by_word(caption, version=2):
    return {w: r for w, r in zip(V.caption_words(caption), V.caption_color_roles(caption, version)) if r != V.NO_ROLE}


@pytest.mark.parametrize("caption, expected", [
    ("a red object with blue dots", {"red": 0, "blue": 1}),
    ("blue dots on a red box, side view", {"red": 0, "blue": 1}),
    ("a cup with a green bottom and a red top, front view", {"red": 0, "green": 1}),
    ("a box that is red on top and blue on the bottom", {"red": 0, "blue": 1}),
    ("a torus with an orange to blue gradient, overhead view", {"orange": 0, "blue": 1}),
    ("an orange sphere", {"orange": 0}),
    ("a purple wooden chair", {"purple": 0}),
    ("a red and blue striped box", {}),  # stripes: no visible role
    ("a red and blue checkered box", {}),
    ("a reddish thing", {}),  # no template matches
    ("", {}),
])
def test_caption_color_roles_examples(caption, expected):
    assert _roles_by_word(caption) == expected
    assert len(V.caption_color_roles(caption, 2)) == len(V.caption_words(caption))


def test_caption_color_roles_follow_the_texture_not_the_word_order():
    """Every role-labelled caption of every template names the spec's colours[0] with role 0 and colours[-1] with
    role 1, whichever word comes first (the templates state the roles in both orders)."""
    checked = 0
    for version in (1, 2):
        templates = V.CAPTION_TEMPLATES if version == 1 else V.CAPTION_TEMPLATES_V2
        for pattern, group in templates.items():
            colours = ("yellow",) if pattern in V.ONE_COLOR_PATTERNS else ("yellow", "blue")
            spec = TextureSpec(pattern, colours, {"direction": "vertical"})
            for template in range(len(group)):
                for suffix in ("", ", side view"):
                    caption = spec.caption("object", suffix, template, version=version)
                    roles = _roles_by_word(caption, version)
                    if pattern not in V.ROLE_LABELLED_PATTERNS:
                        assert roles == {}, caption
                        continue
                    want = {"yellow": 0} if len(colours) == 1 else {"yellow": 0, "blue": 1}
                    assert roles == want, caption
                    checked += 1
    assert checked > 30


def test_caption_table_token_roles_line_up_with_tokens():
    tokenizer = build_tokenizer(V.VOCABULARY_V2)
    captions = ["blue dots on a red box, side view", "a red and blue striped box", "a red object with blue dots"]
    table = CaptionTable(tokenizer, captions, torch.device("cpu"), V.nouns_for(2), data_version=2, role_labels=True)
    rows = table.index.tolist()
    for caption, row in zip(captions, rows):
        tokens = tokenizer.convert_ids_to_tokens(table.ids[row].tolist())
        labelled = {tokens[i].lstrip("\u2581"): int(table.roles[row, i]) for i in range(77)
                    if int(table.roles[row, i]) != IGNORE_ROLE}
        assert labelled == _roles_by_word(caption), caption
    assert (table.roles[table.empty] == IGNORE_ROLE).all()
    assert CaptionTable(tokenizer, captions, torch.device("cpu"), V.nouns_for(2)).roles is None


def test_caption_table_batch_returns_the_caption_rows_it_used():
    tokenizer = build_tokenizer(V.VOCABULARY_V2)
    captions = ["a red object with blue dots", "an orange sphere"] * 8
    table = CaptionTable(tokenizer, captions, torch.device("cpu"), V.nouns_for(2), data_version=2, role_labels=True)
    rows = torch.arange(16)
    ids, mask, caption_rows = table.batch(rows, 0.5, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(ids, table.ids[caption_rows]) and torch.equal(mask, table.mask[caption_rows])
    dropped = caption_rows == table.empty
    assert 0 < int(dropped.sum()) < 16  # dropout 0.5 empties some captions, and their roles are all ignored
    assert torch.equal(caption_rows[~dropped], table.index[rows][~dropped])


def test_role_loss_ignores_unlabelled_tokens_and_needs_no_labels():
    logits = torch.randn(2, 77, 2, requires_grad=True)
    roles = torch.full((2, 77), IGNORE_ROLE)
    empty = role_loss(logits, roles)
    assert float(empty.detach()) == 0.0 and torch.isfinite(empty)
    roles[0, 1], roles[1, 4] = 0, 1
    loss = role_loss(logits, roles)
    expected = torch.nn.functional.cross_entropy(torch.stack([logits[0, 1], logits[1, 4]]), torch.tensor([0, 1]))
    assert torch.allclose(loss, expected)
    loss.backward()
    touched = logits.grad.abs().sum(-1) > 0
    assert touched.sum() == 2 and touched[0, 1] and touched[1, 4]


def _train_role_read_out(neighbour_bias: float, steps: int = 25) -> tuple[float, float]:
    from csdtex.tinyprior.model import TinyPriorConfig, build_tiny_prior, encode_captions

    components = build_tiny_prior(seed=0, config=TinyPriorConfig(text_neighbour_bias=neighbour_bias),
                                  words=V.VOCABULARY_V2)
    captions = ["a red object with blue dots", "a blue object with red dots"]  # the same words, roles swapped
    table = CaptionTable(components.tokenizer, captions, torch.device("cpu"), V.nouns_for(2), data_version=2,
                         role_labels=True)
    rows = table.index[:2]
    np.testing.assert_array_equal(table.roles[rows][table.roles[rows] != IGNORE_ROLE].numpy(), [0, 1, 0, 1])
    head = RoleHead(components.config.text_width)
    optimizer = torch.optim.Adam(list(components.text_encoder.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(steps):
        states = encode_captions(components.tokenizer, components.text_encoder, input_ids=table.ids[rows],
                                 attention_mask=table.mask[rows])
        loss = role_loss(head(states), table.roles[rows])
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses[0], losses[-1]


def test_neighbour_bias_init_lets_the_text_encoder_learn_roles():
    """Swapped twins hold the same words, so only positions tell the roles apart. With T5's own init the read-out
    stays at chance (ln 2) - the failure that left the priors without word order; with the neighbour init of the
    relative position bias it learns them within a few steps."""
    first, last = _train_role_read_out(4.0)
    assert first > 0.3 and last < 0.05
    _, last_plain = _train_role_read_out(0.0)
    assert last_plain > 0.4


def test_neighbour_bias_init_sets_only_the_bias_table():
    import dataclasses

    from transformers.models.t5.modeling_t5 import T5Attention

    from csdtex.tinyprior.model import TinyPriorConfig, build_tiny_prior

    plain = build_tiny_prior(seed=0)
    config = dataclasses.replace(TinyPriorConfig(), text_neighbour_bias=4.0)
    biased = build_tiny_prior(seed=0, config=config)
    for (name, a), (_, b) in zip(plain.text_encoder.named_parameters(), biased.text_encoder.named_parameters()):
        if "relative_attention_bias" not in name:
            assert torch.equal(a, b), name
    table = biased.text_encoder.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    buckets = T5Attention._relative_position_bucket(torch.tensor([-1, 0, 1, 2]), bidirectional=True,
                                                    num_buckets=32, max_distance=128)
    expected = torch.tensor([[4.0, 0.0, 2.0, 0.0], [0.0, 0.0, 4.0, 0.0], [0.0, 4.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(table[buckets].detach(), expected)
    assert float(table.detach().abs().sum()) == float(expected.abs().sum())
