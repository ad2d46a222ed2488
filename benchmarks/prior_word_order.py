"""Does a built-in prior itself follow word order? Samples of swapped twin prompts, no painting (issue #15).

For colour pairs (A, B), the prior draws ``--samples`` images of "a A object with B dots" and as many of "a B object
with A dots" (DDIM, classifier-free guidance 4, the same noise for both twins: :func:`csdtex.tinyprior.model.
sample_images`). In every image the pixels within ``--radius`` (RGB distance, colours in [0, 1]) of A's or B's
reference colour are counted; ``share_A`` = A pixels / (A + B pixels). A prior that reads word order paints the base
colour over most of the object and the dot colour on a minority, so ``share_A`` is high for the first twin and low
for the second; the **response** = mean ``share_A`` (A base) - mean ``share_A`` (B base) is near +0.5 for such a
prior and near 0 for one that ignores the order. "Majority right" = share of images whose majority colour is the
named base colour. Backgrounds of the prior's samples are random colours, so pairs avoid white, black and gray.

This isolates the prior from score distillation: if the response is ~0 here, no painting method can recover word
order from that prior. Two-core CPU: about a minute per prior.

It also reports where the order is lost: **encoder role cosine** = cosine similarity between the text encoder's
output state of colour word A when A is the base and when A is the dots' colour (averaged over both words of a pair).
Near 1, the encoder gives a colour word the same state whatever its role, and since the UNet's cross-attention has
no position information of its own (keys and values are the token states), the UNet then sees a bag of words.

Example::

    python benchmarks/prior_word_order.py assets/priors/tiny out/tiny_v2 --name prior_word_order_cpu
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # benchmarks/common.py

PAIRS: tuple[tuple[str, str], ...] = (("yellow", "blue"), ("red", "green"), ("orange", "purple"), ("pink", "cyan"))
"""(A, B) colour words; both orders are sampled."""


def base_colour_shares(images: np.ndarray, color_a: np.ndarray, color_b: np.ndarray, radius: float) -> np.ndarray:
    """Per image, A pixels / (A + B pixels): float [N] in [0, 1] (0.5 where neither colour appears).

    Args:
        images: uint8 [N, H, W, 3] RGB.
        color_a, color_b: float [3] reference RGB in [0, 1].
        radius: a pixel counts as a colour when its Euclidean RGB distance to it is below this.
    """
    x = images.reshape(len(images), -1, 3).astype(np.float32) / 255.0
    near_a = np.linalg.norm(x - color_a, axis=-1) < radius
    near_b = np.linalg.norm(x - color_b, axis=-1) < radius
    a, b = near_a.sum(1), near_b.sum(1)
    return np.where(a + b > 0, a / np.maximum(a + b, 1), 0.5)


def top_colour_shares(images: np.ndarray, color_a: np.ndarray, color_b: np.ndarray, radius: float) -> np.ndarray:
    """Per image, A pixels / (A + B pixels) in the top half of the image (rows 0 .. H/2 - 1): float [N] in [0, 1]
    (0.5 where neither colour appears there). Arguments as :func:`base_colour_shares`."""
    return base_colour_shares(images[:, : images.shape[1] // 2], color_a, color_b, radius)


ROLE_PROBES: dict[str, tuple[str, Any, bool]] = {
    "dots": ("a {a} object with {b} dots", base_colour_shares, False),
    "halves": ("an object with a {a} top and a {b} bottom", top_colour_shares, True),
}
"""``--roles``: prompt template (``{a}`` = the first-role colour: base / top), the share measured per image (dots:
A's share of all A/B pixels; halves: A's share of the A/B pixels in the image's top half), and whether "a" before a
vowel becomes "an" as in the captions (the dots probe keeps the session-6 phrasing, "a orange object", so its
numbers stay comparable)."""


def role_prompt(template: str, a: str, b: str, article: bool = True) -> str:
    """``template`` filled with colours ``a`` and ``b``; with ``article``, "a" before a vowel becomes "an"."""
    text = template.format(a=a, b=b)
    return re.sub(r"\ba (?=[aeiou])", "an ", text) if article else text


def role_cosine(components, first: str, second: str, words: Sequence[str]) -> float:
    """Mean over ``words`` of the cosine similarity between the text encoder's output state of each word in prompt
    ``first`` and in prompt ``second`` (the first occurrence of the word's token in each); in [-1, 1]."""
    from csdtex.tinyprior import model as tiny_model

    ids, mask = tiny_model.tokenize(components.tokenizer, [first, second])
    encoder = components.text_encoder
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        states = encoder(input_ids=ids.to(encoder.device), attention_mask=mask.to(encoder.device)).last_hidden_state
    encoder.train(was_training)
    cosines = []
    tokens = [[t.lstrip("\u2581") for t in components.tokenizer.convert_ids_to_tokens(row)] for row in ids]
    for word in words:
        positions = [tokens[k].index(word) for k in range(2)]
        cosines.append(float(torch.nn.functional.cosine_similarity(states[0, positions[0]], states[1, positions[1]],
                                                                   dim=0)))
    return float(np.mean(cosines))


def main(argv: Sequence[str] | None = None) -> dict:
    from common import write_json
    from csdtex.tinyprior import model as tiny_model
    from csdtex.tinyprior.vocabulary import COLORS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("priors", nargs="+", help="prior folders (diffusers layout of the built-in prior)")
    p.add_argument("--samples", type=int, default=24, help="images per prompt")
    p.add_argument("--steps", type=int, default=30, help="DDIM steps")
    p.add_argument("--radius", type=float, default=0.35, help="RGB distance that counts as a colour")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="prior_word_order_cpu")
    p.add_argument("--roles", default="dots", help=f"comma-separated subset of {','.join(ROLE_PROBES)}")
    args = p.parse_args(argv)
    args.roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if not args.roles or any(r not in ROLE_PROBES for r in args.roles):
        p.error(f"--roles: choose from {', '.join(ROLE_PROBES)}")
    start = time.perf_counter()
    results: dict[str, dict] = {}
    print(f"{'prior':<28} {'pair':<16} {'share_A (A base)':>16} {'share_A (B base)':>16} {'response':>9} "
          f"{'majority right':>15} {'encoder role cos':>17}")
    for folder in args.priors:
        components = tiny_model.load_components(folder)
        results[str(folder)] = {}
        for role in args.roles:
            template, measure, article = ROLE_PROBES[role]
            rows = []
            for a, b in PAIRS:
                prompts = [role_prompt(template, a, b, article), role_prompt(template, b, a, article)]
                images = tiny_model.sample_images(components, prompts, num_per_prompt=args.samples,
                                                  steps=args.steps, seed=args.seed).numpy()
                color_a, color_b = (np.asarray(COLORS[c], np.float32) for c in (a, b))
                first = measure(images[: args.samples], color_a, color_b, args.radius)
                second = measure(images[args.samples :], color_a, color_b, args.radius)
                row = {"pair": [a, b], "prompts": prompts, "share_a_when_a_is_base": float(first.mean()),
                       "share_a_when_b_is_base": float(second.mean()), "response": float(first.mean() - second.mean()),
                       "majority_right": float(((first > 0.5).sum() + (second < 0.5).sum()) / (2 * args.samples)),
                       "encoder_role_cosine": role_cosine(components, prompts[0], prompts[1], (a, b))}
                rows.append(row)
                print(f"{Path(folder).name + ' ' + role:<28} {a + '/' + b:<16} {row['share_a_when_a_is_base']:>16.2f} "
                      f"{row['share_a_when_b_is_base']:>16.2f} {row['response']:>+9.2f} "
                      f"{row['majority_right']:>15.2f} {row['encoder_role_cosine']:>17.4f}")
            summary = {"pairs": rows, "mean_response": float(np.mean([r["response"] for r in rows])),
                       "mean_majority_right": float(np.mean([r["majority_right"] for r in rows])),
                       "mean_encoder_role_cosine": float(np.mean([r["encoder_role_cosine"] for r in rows]))}
            if role == "dots":  # the session-6 layout: the dots probe at the top level of the prior's entry
                results[str(folder)].update(summary)
            else:
                results[str(folder)][role] = summary
            print(f"{Path(folder).name + ' ' + role:<28} {'mean':<16} {'':>16} {'':>16} "
                  f"{summary['mean_response']:>+9.2f} {summary['mean_majority_right']:>15.2f} "
                  f"{summary['mean_encoder_role_cosine']:>17.4f}")
    used = argv if argv is not None else sys.argv[1:]
    record = {"command": "python benchmarks/prior_word_order.py " + " ".join(used),
              "roles": args.roles, "samples": args.samples, "steps": args.steps, "radius": args.radius,
              "seed": args.seed,
              "torch": torch.__version__, "priors": results, "seconds": round(time.perf_counter() - start, 1)}
    path = write_json(Path(args.out) / f"{args.name}.json", record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
