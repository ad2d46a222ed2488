"""Pieces of the built-in prior's training loop (``benchmarks/train_prior.py``): the learning-rate schedule, the EMA
of the weights, caption tokenization with train-time augmentation, the image scaling and the held-out loss.

Conventions: images uint8 [B, 64, 64, 3] (RGB, row 0 at the top) in the data, float32 [B, 3, 64, 64] in [-1, 1] for
the model; token ids int64 [B, 77] as :func:`csdtex.tinyprior.model.tokenize` makes them; timesteps int64 in
[0, T).

Public API: :func:`learning_rate`, :func:`ema_update`, :class:`CaptionTable`, :func:`images_to_model`,
:func:`heldout_loss`, :class:`RoleHead`, :func:`role_loss`, :data:`IGNORE_ROLE`, :func:`warm_start`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from csdtex.tinyprior.model import TinyPriorComponents, tokenize
from csdtex.tinyprior.vocabulary import GENERIC_NOUN, NO_ROLE, SHAPES, caption_color_roles, caption_words

IGNORE_ROLE = -100
"""Role label of a token without a colour role in :attr:`CaptionTable.roles` (ignored by :func:`role_loss`)."""


def learning_rate(step: int, horizon: int, peak: float, warmup: int, final_ratio: float = 0.1) -> float:
    """Linear warm-up over ``min(warmup, horizon // 10)`` steps, then cosine from ``peak`` to ``final_ratio * peak``
    at step ``horizon`` (constant after)."""
    warmup = max(1, min(warmup, horizon // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, horizon - warmup))
    return peak * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema_modules: Sequence[torch.nn.Module], modules: Sequence[torch.nn.Module], decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * live`` for every parameter (buffers copied)."""
    ema_params, live_params = [], []
    for ema, live in zip(ema_modules, modules):
        ema_params += list(ema.parameters())
        live_params += [p.detach() for p in live.parameters()]
        for eb, lb in zip(ema.buffers(), live.buffers()):
            eb.copy_(lb)
    torch._foreach_lerp_(ema_params, live_params, 1.0 - decay)


class CaptionTable:
    """Token ids of every distinct caption (tokenized once), plus the variants used for augmentation.

    Attributes (on ``device``):
        ids, mask: int64 [U, 77] token ids / attention masks of the U distinct captions.
        ids_unk: int64 [U, 77], ``ids`` with every shape word of ``nouns`` (default
            :data:`csdtex.tinyprior.vocabulary.SHAPES`, the nouns of data versions 1 and 3; data version 2:
            :func:`csdtex.tinyprior.vocabulary.nouns_for` (2)) and "object" replaced by ``<unk>``.
        index: int64 [N], distinct-caption row of every image.
        empty: int, the row of the empty caption ``""``.
        roles: with ``role_labels``, int64 [U, 77], the colour role of every token (0 = base / top colour, 1 = dots /
            bottom colour, :data:`IGNORE_ROLE` elsewhere) from :func:`csdtex.tinyprior.vocabulary.caption_color_roles`
            for captions of ``data_version`` (1, 2 or 3; version 3's material captions label their one colour 0);
            a caption whose tokens are not one per word (an unknown word split
            into pieces) gets no labels. The word-order training signal of ``train_prior.py --role-loss``. None
            without ``role_labels`` (parsing every distinct caption takes a few seconds for 200k images).
    """

    def __init__(
        self, tokenizer, captions: Sequence[str], device: torch.device, nouns: Sequence[str] | None = None,
        data_version: int = 1, role_labels: bool = False,
    ) -> None:
        distinct, inverse = np.unique(np.asarray(list(captions) + [""], dtype=np.str_), return_inverse=True)
        ids, mask = tokenize(tokenizer, [str(c) for c in distinct])
        nouns = tuple(SHAPES) if nouns is None else tuple(nouns)
        noun_ids = tokenizer.convert_tokens_to_ids(["\u2581" + w for w in nouns + (GENERIC_NOUN,)])
        is_noun = torch.isin(ids, torch.tensor(noun_ids))
        self.ids = ids.to(device)
        self.mask = mask.to(device)
        self.ids_unk = torch.where(is_noun, tokenizer.unk_token_id, ids).to(device)
        self.index = torch.as_tensor(inverse[:-1], dtype=torch.long, device=device)
        self.empty = int(inverse[-1])
        self.roles = (
            _token_roles(tokenizer, [str(c) for c in distinct], ids, data_version).to(device) if role_labels else None
        )

    def batch(
        self, rows: torch.Tensor, dropout: float, unk: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, mask) int64 [B, 77] for images ``rows`` with train-time caption dropout / unknown-noun replacement,
        and the distinct-caption row int64 [B] used for each image (the empty caption's where dropped; index
        :attr:`roles` with it)."""
        caption = self.index[rows]
        u = torch.rand(rows.shape[0], generator=generator, device=rows.device)
        caption = torch.where(u < dropout, torch.full_like(caption, self.empty), caption)
        use_unk = ((u >= dropout) & (u < dropout + unk)).unsqueeze(-1)
        ids = torch.where(use_unk, self.ids_unk[caption], self.ids[caption])
        return ids, self.mask[caption], caption


def _token_roles(tokenizer, captions: Sequence[str], ids: torch.Tensor, data_version: int) -> torch.Tensor:
    """int64 [U, 77] token roles of ``captions`` (tokenized as ``ids``), see :attr:`CaptionTable.roles`."""
    roles = torch.full(ids.shape, IGNORE_ROLE, dtype=torch.long)
    for row, caption in enumerate(captions):
        labels = caption_color_roles(caption, data_version)
        if all(label == NO_ROLE for label in labels):
            continue
        words = caption_words(caption)
        pieces = tokenizer.convert_ids_to_tokens(ids[row, : len(words)].tolist())
        if [p.lstrip("\u2581") for p in pieces] != words:  # not one token per word: no labels
            continue
        for position, label in enumerate(labels):
            if label != NO_ROLE:
                roles[row, position] = label
    return roles


class RoleHead(torch.nn.Module):
    """A linear read-out of a colour word's role from the text encoder's output state (training only; not saved in
    the prior): float [B, 77, D] -> logits float [B, 77, 2] (role 0 = base / top, 1 = dots / bottom).

    Why: the text encoder of a prior trained on the diffusion loss alone gives a colour word the same state whatever
    its role (cosine 0.9998-0.9999 between "red" as base and as dots, ``benchmarks/prior_word_order.py``), so the
    UNet's cross-attention, which has no positions of its own, sees a bag of words. Asking the states to tell the
    role apart makes the role linearly readable from the keys and values the UNet attends to.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, 2)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(states)


def role_loss(logits: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the role logits (float [B, 77, 2]) over the tokens with a role (int64 [B, 77];
    :data:`IGNORE_ROLE` elsewhere); 0 when no token has one. No host synchronization (safe in a CUDA graph)."""
    labelled = roles != IGNORE_ROLE
    per_token = F.cross_entropy(logits.float().flatten(0, 1), roles.clamp(min=0).flatten(), reduction="none")
    weights = labelled.flatten().float()
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


def images_to_model(images_u8: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1]; rows where ``flip`` (bool [B]) is True are mirrored."""
    x = images_u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if flip is not None:
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


@torch.no_grad()
def heldout_loss(
    unet, text_encoder, images: torch.Tensor, table: CaptionTable, alphas_cumprod: torch.Tensor, seed: int,
    batch: int, autocast,
) -> float:
    """Mean epsilon-MSE on fixed images / noise / timesteps (stratified over [0, T)): comparable across checkpoints."""
    generator = torch.Generator(device=images.device).manual_seed(seed + 12345)
    n, total = images.shape[0], 0.0
    steps = alphas_cumprod.shape[0]
    training = (unet.training, text_encoder.training)
    unet.eval(), text_encoder.eval()
    for start in range(0, n, batch):
        rows = torch.arange(start, min(n, start + batch), device=images.device)
        x = images_to_model(images[rows])
        t = ((rows * steps) // n).long()
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x + (1 - a).sqrt() * noise
        ids, mask = table.ids[table.index[rows]], table.mask[table.index[rows]]
        with autocast:
            text = text_encoder(ids, attention_mask=mask)[0]
            eps = unet(x_t, t, encoder_hidden_states=text).sample
        total += F.mse_loss(eps.float(), noise, reduction="sum").item() / noise[0].numel()
    unet.train(training[0]), text_encoder.train(training[1])
    return total / max(n, 1)


def warm_start(target: TinyPriorComponents, source: TinyPriorComponents) -> dict:
    """Start ``target``'s training from ``source``'s weights (a trained prior of the same architecture), in place.

    The UNet and every text-encoder weight except the word embeddings are copied as they are. The word embeddings
    are copied by token: each token of ``target``'s vocabulary that ``source``'s vocabulary has (the same piece
    string, e.g. ``"▁red"``) gets ``source``'s row, so a larger vocabulary keeps every known word's meaning; the
    other tokens (new words) keep ``target``'s seeded initialization.

    Args:
        target: freshly built components (:func:`csdtex.tinyprior.model.build_tiny_prior`), possibly with another
            vocabulary than ``source``.
        source: the trained prior (:func:`csdtex.tinyprior.model.load_components`), on the same device.

    Returns:
        ``{"carried_tokens": int, "new_tokens": [piece, ...]}``.

    Raises:
        ValueError: the architectures differ (a UNet or text-encoder weight has another name or shape), with the
            first mismatch named.
    """
    if target.config != source.config:
        mismatched = [name for name in vars(target.config) if getattr(target.config, name) != getattr(source.config,
                                                                                                       name)]
        raise ValueError(f"architectures differ in {', '.join(mismatched)}")
    source_text = source.text_encoder.state_dict()
    target_embeddings = target.text_encoder.get_input_embeddings().weight
    embedding_keys = {key for key, value in source_text.items()
                      if value.data_ptr() == source.text_encoder.get_input_embeddings().weight.data_ptr()}
    with torch.no_grad():
        target.unet.load_state_dict(source.unet.state_dict())
        missing, unexpected = target.text_encoder.load_state_dict(
            {key: value for key, value in source_text.items() if key not in embedding_keys}, strict=False)
        if unexpected or set(missing) - embedding_keys:
            raise ValueError(f"text encoders differ: missing {sorted(set(missing) - embedding_keys)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")
        source_vocabulary = source.tokenizer.get_vocab()
        source_embeddings = source.text_encoder.get_input_embeddings().weight
        new_tokens = []
        for piece, index in sorted(target.tokenizer.get_vocab().items(), key=lambda item: item[1]):
            if piece in source_vocabulary:
                target_embeddings[index] = source_embeddings[source_vocabulary[piece]].to(target_embeddings)
            else:
                new_tokens.append(piece)
    carried = len(target.tokenizer.get_vocab()) - len(new_tokens)
    return {"carried_tokens": carried, "new_tokens": new_tokens}
