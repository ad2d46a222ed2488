"""Where do the one-time seconds of a paint go: interpreter, imports, CUDA context, reading each network, placing it?

    python benchmarks/load_time.py --device cuda --prior sd21          # SD-2.1-base architecture (random weights)
    python benchmarks/load_time.py --device cpu --prior tiny           # the built-in prior on the CPU
    python benchmarks/load_time.py --device cuda --prior sd21 --profile 25   # + the 25 costliest calls of the load

Issue #13 counts everything from process start to the files written against its 45 s; at 1000 steps a paint's
optimization is most of it, but the prior's load (11.5 s in the 1000-step run of session 13) and the time outside
every phase of ``run.json`` (about 7 s there: the interpreter, imports, the CUDA context, the process's exit) are
paid once per run and per batch worker whatever the step time. This script measures them apart, each run in a fresh
process (``--repeats`` of them; the first also pays a cold page cache for the weights, when they are not cached):

1. ``interpreter``: from the parent's spawn to the child's first statement;
2. ``import_torch``; ``cuda_context`` (the first tensor on the device; 0 on the CPU);
3. ``import_csdtex_cli``: what ``csdtex`` imports before it parses the command line;
4. ``import_model_libraries``: diffusers' UNet / VAE and transformers' text encoders (``load_prior`` imports them);
5. ``read_<component>`` per part (``from_pretrained`` of the folder's ``tokenizer``, ``unet``, ``text_encoder``,
   ``vae``: for a network the safetensors read and the module's construction), ``place_networks`` (the UNet and
   the VAE encoder to the device), ``load_prior_other`` (the rest of :func:`csdtex.guidance.load_prior`:
   scheduler, checks, the text encoder's move);
6. ``encode_text``: the first prompt encoding (with the libraries' kernel initialization on CUDA);
7. ``exit``: from the child's last mark to its process ending (freeing the CUDA context).

With ``--profile N`` one more child runs the load under ``cProfile`` and lists the N functions of largest cumulative
time (profiling slows Python, so its seconds are not the table's). Writes ``results/load_time_<prior>_<device>.json``
(or ``--json``). The random-weight folders are the ones ``speed.py`` builds (``--cache``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import environment, print_table, write_json  # noqa: E402
from speed import prior_model  # noqa: E402

PHASES = ("interpreter", "import_torch", "cuda_context", "import_csdtex_cli", "import_model_libraries",
          "read_tokenizer", "read_unet", "read_text_encoder",
          "read_vae", "place_networks", "load_prior_other", "encode_text", "exit")

_CHILD = r"""
import time
_first = time.time()
import json, sys
spawned, record_path, model, device_name = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
profile_rows = int(sys.argv[5])
marks = {"interpreter": _first - spawned}
clock = time.perf_counter()

def mark(name):
    global clock
    now = time.perf_counter()
    marks[name] = marks.get(name, 0.0) + now - clock
    clock = now

import torch
mark("import_torch")
device = torch.device(device_name)
if device.type == "cuda":
    torch.zeros(1, device=device)
    torch.cuda.synchronize(device)
mark("cuda_context")
import csdtex.cli  # noqa: F401
mark("import_csdtex_cli")
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
from transformers import CLIPTextModel, T5EncoderModel  # noqa: F401
mark("import_model_libraries")

import csdtex.guidance.loading as loading
from csdtex.guidance import load_prior
from csdtex.guidance.priors import Prior

inner_seconds = {}
original_load_component = loading._load_component
original_place = Prior.place_networks

def timed_load_component(loader, what, **kwargs):
    start = time.perf_counter()
    try:
        return original_load_component(loader, what, **kwargs)
    finally:
        key = "read_" + what.name
        inner_seconds[key] = inner_seconds.get(key, 0.0) + time.perf_counter() - start

def timed_place(self):
    start = time.perf_counter()
    try:
        original_place(self)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
    finally:
        inner_seconds["place_networks"] = inner_seconds.get("place_networks", 0.0) + time.perf_counter() - start

loading._load_component = timed_load_component
Prior.place_networks = timed_place
profile_text = ""
if profile_rows:
    import cProfile, io, pstats
    profiler = cProfile.Profile()
    profiler.enable()
prior = load_prior(model, device)
if device.type == "cuda":
    torch.cuda.synchronize(device)
if profile_rows:
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(profile_rows)
    profile_text = stream.getvalue()
mark("load_prior")
load_total = marks.pop("load_prior")
marks.update(inner_seconds)
marks["load_prior_other"] = load_total - sum(inner_seconds.values())
prior.encode_text(["a weathered bronze statue", ""])
if device.type == "cuda":
    torch.cuda.synchronize(device)
mark("encode_text")
with open(record_path, "w") as handle:
    json.dump({"seconds": marks, "ended": time.time(), "profile": profile_text}, handle)
"""
"""``python -c`` body of one measured child: argv = spawn time (``time.time()``), record path, model, device, number of
profile rows (0: no profile)."""


def measure_once(model: str, device: str, profile_rows: int = 0) -> dict:
    """One fresh process: the seconds per phase (:data:`PHASES`), and the profile text when ``profile_rows``."""
    with tempfile.TemporaryDirectory() as scratch:
        record_path = Path(scratch) / "record.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        spawned = time.time()
        start = time.perf_counter()
        completed = subprocess.run([sys.executable, "-c", _CHILD, repr(spawned), str(record_path), model, device,
                                    str(profile_rows)], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        ended = time.time()
        if completed.returncode != 0 or not record_path.exists():
            raise SystemExit(f"the measured process failed ({completed.returncode}): "
                             f"{completed.stderr.strip()[-2000:]}")
        record = json.loads(record_path.read_text())
    seconds = {name: record["seconds"].get(name, 0.0) for name in PHASES}
    seconds["exit"] = max(0.0, ended - record["ended"])
    return {"wall_s": wall, "seconds": seconds, "profile": record["profile"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--prior", choices=("sd21", "if", "tiny"), default="sd21")
    parser.add_argument("--toy", action="store_true", help="toy-size random folders (a smoke test of this script)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes measured (the table shows each)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="one more process with the load under cProfile: its N costliest calls")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "csdtex-random-priors",
                        help="where speed.py's random-weight folders are built once")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    model = prior_model(args)
    runs = [measure_once(model, args.device) for _ in range(args.repeats)]
    rows = []
    for name in (*PHASES, "wall_s"):
        values = [run["wall_s"] if name == "wall_s" else run["seconds"][name] for run in runs]
        rows.append({"phase": name, **{f"run {i + 1} (s)": round(v, 3) for i, v in enumerate(values)},
                     "median (s)": round(statistics.median(values), 3)})
    print_table(rows, list(rows[0]))
    report = {"environment": environment(), "device": args.device, "prior": args.prior, "model": model,
              "runs": [{"wall_s": round(run["wall_s"], 3),
                        "seconds": {k: round(v, 3) for k, v in run["seconds"].items()}} for run in runs],
              "median_s": {row["phase"]: row["median (s)"] for row in rows}}
    if args.profile:
        profiled = measure_once(model, args.device, profile_rows=args.profile)
        print(profiled["profile"])
        report["profile"] = profiled["profile"]
    path = args.json or ROOT / "benchmarks" / "results" / f"load_time_{args.prior}_{args.device.split(':')[0]}.json"
    write_json(path, report)
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
