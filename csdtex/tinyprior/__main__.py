"""Command line for tiny-prior folders: ``python -m csdtex.tinyprior write-vocabulary FOLDER [FOLDER ...]``.

``write-vocabulary`` adds the prior's closed vocabulary (the words of the folder's own tokenizer, with the colour and
shape groups) to the folder's ``tiny_prior_config.json``, keeping everything else; see
:func:`csdtex.tinyprior.model.write_vocabulary`. Priors saved by :func:`csdtex.tinyprior.model.save_prior_folder`
(e.g. by ``benchmarks/train_prior.py``) already carry it; the shipped ``assets/priors/tiny`` got it this way.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from csdtex.tinyprior.model import write_vocabulary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 on success)."""
    parser = argparse.ArgumentParser(prog="python -m csdtex.tinyprior", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write-vocabulary", help="store the tokenizer's words in tiny_prior_config.json")
    write.add_argument("folders", nargs="+", help="tiny-prior folders (with tiny_prior_config.json and tokenizer/)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            path = write_vocabulary(folder)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"wrote the vocabulary into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
