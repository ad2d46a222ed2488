"""Text conditioning: view-dependent prompt suffixes and the per-run cache of text embeddings.

All prompts a run needs (the prompt with each view suffix, the empty prompt ``""`` and the negative prompt) are encoded
once, in one text-encoder call, when :class:`PromptEmbeddings` is built; each optimization step then only gathers
rows with :meth:`PromptEmbeddings.for_views`.

View convention (degrees): azimuth 0 looks at the object's front, azimuth is wrapped to (-180, 180]; elevation is
positive above the horizon. Rule (docs/design.md, as in the authors' code): ``", overhead view"`` if elevation > 60, else
``", front view"`` if |azimuth| < 45, ``", back view"`` if |azimuth| > 135, else ``", side view"``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

FRONT, SIDE, BACK, OVERHEAD = ", front view", ", side view", ", back view", ", overhead view"
VIEW_SUFFIXES: tuple[str, ...] = (FRONT, SIDE, BACK, OVERHEAD)
"""The view suffixes, in the order of their rows in :attr:`PromptEmbeddings.prompt`."""

DEFAULT_NEGATIVE_PROMPT = "oversaturated color, ugly, tiling, low quality, noisy"
"""Negative prompt of the authors' released configs."""

OVERHEAD_ELEVATION_DEG = 60.0
FRONT_AZIMUTH_DEG = 45.0
BACK_AZIMUTH_DEG = 135.0


def wrap_azimuth(azimuth_deg: float) -> float:
    """Wrap an azimuth in degrees to (-180, 180] (so -180 becomes 180)."""
    wrapped = math.fmod(float(azimuth_deg), 360.0)
    if wrapped > 180.0:
        wrapped -= 360.0
    elif wrapped <= -180.0:
        wrapped += 360.0
    return wrapped


def view_suffix(elevation_deg: float, azimuth_deg: float) -> str:
    """The prompt suffix for a camera at ``elevation_deg`` / ``azimuth_deg`` (degrees, azimuth 0 = front).

    Returns one of :data:`VIEW_SUFFIXES`: ``", overhead view"`` if elevation > 60; otherwise, with the azimuth wrapped
    to (-180, 180], ``", front view"`` if |azimuth| < 45, ``", back view"`` if |azimuth| > 135, else ``", side view"``
    (so exactly 45 and 135 degrees are side views).
    """
    if float(elevation_deg) > OVERHEAD_ELEVATION_DEG:
        return OVERHEAD
    azimuth = abs(wrap_azimuth(azimuth_deg))
    if azimuth < FRONT_AZIMUTH_DEG:
        return FRONT
    if azimuth > BACK_AZIMUTH_DEG:
        return BACK
    return SIDE


def _as_float_list(values: torch.Tensor | Sequence[float] | float) -> list[float]:
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.detach().reshape(-1).cpu().tolist()]
    if isinstance(values, (int, float)):
        return [float(values)]
    return [float(v) for v in values]


class PromptEmbeddings:
    """Text embeddings of one run, computed once with a single ``prior.encode_text`` call.

    Args:
        prior: a :class:`~csdtex.guidance.priors.Prior` (anything with ``encode_text(list[str]) -> [B, L, D]``).
        prompt: the text prompt (for editing: the target description).
        negative_prompt: the negative prompt (for editing: the description of the current texture). ``None`` or an
            empty / blank string means "no negative term": :meth:`for_views` then returns ``None`` for it.
        view_dependent: append :data:`VIEW_SUFFIXES` to ``prompt`` according to each camera's direction; if False
            every view uses ``prompt`` as is.

    Attributes:
        prompt: [S, L, D] embeddings of the prompt with each suffix (S = 4, in :data:`VIEW_SUFFIXES` order) or
            [1, L, D] of the plain prompt when not view-dependent; dtype and device of the prior.
        empty: [1, L, D] embedding of ``""``.
        negative: [1, L, D] embedding of the negative prompt, or None.
        texts: the prompt strings that were encoded, row by row (prompt rows, then ``""``, then the negative).
    """

    def __init__(
        self,
        prior,
        prompt: str,
        negative_prompt: str | None = DEFAULT_NEGATIVE_PROMPT,
        *,
        view_dependent: bool = True,
    ) -> None:
        self.view_dependent = bool(view_dependent)
        self.prompt_text = prompt
        self.negative_prompt_text = negative_prompt if negative_prompt and negative_prompt.strip() else None
        prompt_rows = [prompt + s for s in VIEW_SUFFIXES] if self.view_dependent else [prompt]
        texts = prompt_rows + [""] + ([self.negative_prompt_text] if self.negative_prompt_text is not None else [])
        embeddings = prior.encode_text(texts)
        n = len(prompt_rows)
        self.texts = texts
        self.prompt = embeddings[:n]
        self.empty = embeddings[n : n + 1]
        self.negative = embeddings[n + 1 : n + 2] if self.negative_prompt_text is not None else None

    def suffix_indices(self, elevations, azimuths) -> torch.Tensor:
        """Row of :attr:`prompt` for each view: int64 [B] (all zeros when not view-dependent)."""
        elev, azim = _as_float_list(elevations), _as_float_list(azimuths)
        if len(elev) != len(azim):
            raise ValueError(f"got {len(elev)} elevations but {len(azim)} azimuths")
        if not self.view_dependent:
            return torch.zeros(len(elev), dtype=torch.long)
        return torch.tensor([VIEW_SUFFIXES.index(view_suffix(e, a)) for e, a in zip(elev, azim)], dtype=torch.long)

    def for_views(
        self,
        elevations: torch.Tensor | Sequence[float],
        azimuths: torch.Tensor | Sequence[float],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Gather the embeddings for a batch of B views.

        Args:
            elevations: [B] camera elevations in degrees (tensor or sequence).
            azimuths: [B] camera azimuths in degrees, 0 = front (any range; wrapped to (-180, 180]).

        Returns:
            ``(e_y, e_0, e_neg)``: each [B, L, D] in the prior's dtype and device; ``e_neg`` is None when the run has
            no negative prompt. ``e_0`` and ``e_neg`` are expanded views (no copy) of the cached rows.
        """
        return self.for_rows(self.suffix_indices(elevations, azimuths))

    def for_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Like :meth:`for_views`, from rows of :attr:`prompt` already chosen with :meth:`suffix_indices`.

        Args:
            rows: int64 [B] row per view (on any device; a CPU tensor is copied without a host synchronization).
        Returns:
            ``(e_y, e_0, e_neg)`` as :meth:`for_views`.
        """
        from csdtex.devices import to_device

        idx = to_device(rows, self.prompt.device)
        b = idx.shape[0]
        e_y = self.prompt.index_select(0, idx)
        e_0 = self.empty.expand(b, -1, -1)
        e_neg = self.negative.expand(b, -1, -1) if self.negative is not None else None
        return e_y, e_0, e_neg
