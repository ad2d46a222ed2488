"""Short names for diffusion priors: what ``--model`` accepts besides a folder or a hub id (``csdtex models``).

The alias :data:`BUILTIN_MODEL` (``tiny``) stands for the prior shipped with csdtex and used by default, and
:data:`MATERIALS_MODEL` (``tiny-materials``) for the second shipped prior, which also knows four material words (see
:func:`csdtex.assets.builtin_prior_folder`; a built-in alias is its folder's name); the others stand for Hugging Face
Hub repositories, which :func:`csdtex.guidance.load_prior` downloads into the Hugging Face cache.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a hub model.

    Attributes:
        alias: what the user types (``--model sd21``).
        repo_id: the Hugging Face Hub repository it stands for.
        description: one line for ``csdtex models``.
        gated: the repository requires accepting a licence on its hub page and logging in.
        builtin: shipped with csdtex (``repo_id`` is then a label, not a hub id); loaded from
            :func:`csdtex.assets.builtin_prior_folder`.
    """

    alias: str
    repo_id: str
    description: str
    gated: bool = False
    builtin: bool = False


BUILTIN_MODEL = "tiny"
"""The alias of the built-in prior, the default ``--model``."""

MATERIALS_MODEL = "tiny-materials"
"""The alias of the second built-in prior: the default one fine-tuned on material objects (wood, marble, brick,
camouflage), better at word order, worse at simple patterns (its model card has the fidelity table)."""

MODEL_ALIASES: dict[str, ModelAlias] = {
    a.alias: a
    for a in (
        ModelAlias(
            BUILTIN_MODEL,
            "(built in)",
            "csdtex's own tiny pixel prior, 64 px, works offline on a CPU; knows flat colours and simple patterns only "
            "(the default)",
            builtin=True,
        ),
        ModelAlias(
            MATERIALS_MODEL,
            "(built in)",
            "the built-in prior fine-tuned on materials: also knows wood(en), marble, brick(s), camouflage; offline",
            builtin=True,
        ),
        ModelAlias(
            "sd21",
            "stabilityai/stable-diffusion-2-1-base",
            "Stable Diffusion 2.1-base, latent prior rendered at 512 px (the CSD paper's default)",
        ),
        ModelAlias(
            "sd15",
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "Stable Diffusion 1.5, latent prior rendered at 512 px",
        ),
        ModelAlias(
            "if",
            "DeepFloyd/IF-I-XL-v1.0",
            "DeepFloyd IF stage I XL, pixel prior at 64 px (gated: accept the licence on the hub page, then log in)",
            gated=True,
        ),
    )
}
"""Every alias (lowercase) -> its :class:`ModelAlias`, in display order (the built-in prior first)."""


def list_model_aliases() -> list[tuple[str, str, str]]:
    """Return the built-in model aliases as ``(alias, hub repo id, one-line description)`` tuples, in display order."""
    return [(a.alias, a.repo_id, a.description) for a in MODEL_ALIASES.values()]
