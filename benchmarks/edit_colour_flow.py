"""Does the prior's CSD direction lead from colour A to colour B? A check of the prior alone, outside the pipeline.

For each colour pair (A, B) of the edit benchmark that edits failed on, an image of a disc of colour A over white
(64^2, the built-in prior's input) is noised at timesteps t in several bands, and the prior's normalized CSD
direction for "a B object, front view" (w2 = 0: ``eps(x_t; y) - eps(x_t; "")``, per sample divided by its L2 norm) is
averaged over the disc's pixels: the colour change it asks for. Printed per pair: the cosine between that change and
``B - A`` in each t band, then where a flow of 30 steps of 0.04 (RGB units, [0, 1]) along the change ends, and the
nearest vocabulary colours there. Used in issue #10 (``benchmarks/README.md``, edit fidelity) to tell a prior that
cannot reach B apart from an edit that does not follow it; CPU, about 5 minutes.

    python benchmarks/edit_colour_flow.py > benchmarks/results/edit_colour_flow_cpu.txt
"""

from __future__ import annotations

import torch

from csdtex.guidance.loading import load_prior
from csdtex.tinyprior.vocabulary import COLORS

PAIRS = [("red", "purple"), ("orange", "pink"), ("yellow", "brown"), ("blue", "white"), ("cyan", "blue"),
         ("green", "black"), ("white", "yellow")]
BANDS = [(20, 200), (200, 500), (500, 980), (20, 980)]


def disc_image(color: torch.Tensor, disc: torch.Tensor) -> torch.Tensor:
    """float32 [1, 3, S, S] in [-1, 1]: ``color`` (float [3] in [0, 1]) inside ``disc`` (float [S, S] 0/1), white
    outside."""
    return (disc * color.view(3, 1, 1) + (1 - disc)).unsqueeze(0) * 2 - 1


def target_embeddings(prior, target: str) -> torch.Tensor:
    """Text embeddings [2, L, D] of ``"a {target} object, front view"`` and the empty prompt."""
    return prior.encode_text([f"a {target} object, front view", ""])


def colour_change(prior, disc, color, embeddings: torch.Tensor, lo: int, hi: int, samples: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Mean normalized CSD direction over the disc's pixels, negated: float [3], the colour change asked for
    (``embeddings`` from :func:`target_embeddings`)."""
    x = disc_image(color, disc).repeat(samples, 1, 1, 1)
    t = torch.randint(lo, hi + 1, (samples,), generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    abar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = abar.sqrt() * x + (1 - abar).sqrt() * noise
    conditions = torch.cat([embeddings[0:1].repeat(samples, 1, 1), embeddings[1:2].repeat(samples, 1, 1)])
    with torch.no_grad():
        eps_y, eps_0 = prior.predict_noise(torch.cat([x_t, x_t]), t.repeat(2), conditions).chunk(2)
    g = eps_y - eps_0
    g = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return -(g * disc).sum(dim=(0, 2, 3)) / (disc.sum() * samples)


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    prior = load_prior("tiny", "cpu")
    size = 64
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((xx**2 + yy**2) < 0.55).float()
    for a, b in PAIRS:
        ca, cb = torch.tensor(COLORS[a]), torch.tensor(COLORS[b])
        wanted = (cb - ca) / (cb - ca).norm()
        embeddings = target_embeddings(prior, b)
        cosines = []
        for lo, hi in BANDS:
            change = colour_change(prior, disc, ca, embeddings, lo, hi, 32, generator)
            cosines.append(f"{float(change / change.norm() @ wanted):+.2f}")
        color = ca.clone()
        for _ in range(30):
            change = colour_change(prior, disc, color, embeddings, 20, 980, 16, generator)
            color = (color + 0.04 * change / change.norm()).clamp(0, 1)
        distance = {name: float((torch.tensor(rgb) - color).norm()) for name, rgb in COLORS.items()}
        nearest = sorted(distance, key=distance.get)[:2]
        print(f"{a:>6} -> {b:<6} cosine per t band {BANDS}: {cosines}; flow ends at "
              f"{[round(v, 2) for v in color.tolist()]}, nearest {nearest}", flush=True)


if __name__ == "__main__":
    main()
