"""The staged paint pipeline: results pinned across the restructuring, no process-global state, one place per
option (command line over every TOML table), and checkpoints that refuse any result-changing setting."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from click.testing import CliRunner
from PIL import Image

import csdtex
from csdtex.cli import main
from csdtex.config import PaintConfig, apply_overrides, load_config_file, resolve_guidance
from csdtex.errors import ConfigError
from csdtex.guidance.random_priors import build_tiny_latent_folder, build_tiny_pixel_folder
from csdtex.painting import seeded_field
from csdtex.pipeline import optimize as optimize_module

ROOT = Path(__file__).resolve().parents[1]
VASE = ROOT / "assets" / "meshes" / "vase.obj"

# The uint8 texture of `paint(vase.obj, "a blue object with white dots", PaintConfig(steps=12, texture_size=64,
# preview_frames=2, preview_size=32, seed=3))` on the built-in prior, on the CPU. Until 2026-12-02 this was a sha256
# recorded on main at f04c099, before the paint loop was split into stages (the bake's seam erasure came later and
# changes texels next to seams only, so the pinned run turns it off). A byte hash turned out to be machine-dependent:
# the same code on another CPU (oneDNN / MKL kernels dispatched per instruction set) or with another thread count
# differs by 1 level in 0.06-0.2% of the texels, and the hash changes. So the reference is now the texture itself
# (tests/data/pinned_paint_texture.png, written at 2 threads, AVX512, by the same code; rewritten on 2026-12-03 when the
# built-in prior was replaced), compared with a
# tolerance that such float noise stays far inside and any change of the method breaks.
PINNED_TEXTURE = ROOT / "tests" / "data" / "pinned_paint_texture.png"


def texture_hash(path: Path) -> str:
    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()


def texture_difference(path: Path, reference: Path) -> tuple[int, float]:
    """(largest absolute difference in 8-bit levels, share of texels that differ at all) of two RGB PNGs."""
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(reference).convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape, (a.shape, b.shape)
    difference = np.abs(a - b).max(axis=-1)
    return int(difference.max()), float((difference > 0).mean())


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def priors(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline_priors")
    return {"latent": build_tiny_latent_folder(root / "latent"), "pixel": build_tiny_pixel_folder(root / "pixel")}


@pytest.fixture(scope="module")
def ball(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipeline_meshes") / "ball.obj"
    trimesh.creation.icosphere(2).export(path)
    return path


def test_seeded_cpu_paint_matches_the_pinned_texture(tmp_path):
    config = PaintConfig(steps=12, texture_size=64, preview_frames=2, preview_size=32, seed=3, seam_erasure=False)
    result = csdtex.paint(VASE, "a blue object with white dots", config, out_dir=tmp_path, show_progress=False)
    largest, share = texture_difference(result.files.textures[0], PINNED_TEXTURE)
    # Rounding differs with the CPU's kernel dispatch, thread count and library versions: on one 2-core AVX-512
    # machine 0.7% (1 thread), 1.8% (2 threads) and 1.8% (ATen forced to AVX2) of the texels came out 1 level off,
    # none more (2026-12-04). A real change of behaviour (another seed, step or schedule) moves nearly every texel,
    # by up to 30 levels.
    assert largest <= 2 and share <= 0.05, (largest, share)


def test_two_runs_in_one_process_match_separate_processes_and_leave_the_global_rng_alone(tmp_path, priors, ball):
    def config(seed: int) -> PaintConfig:
        return PaintConfig(model=str(priors["latent"]), steps=3, views_per_step=2, texture_size=32, seed=seed,
                           preview_frames=2, preview_size=32)

    script = (
        "import sys, csdtex\n"
        "from csdtex.config import PaintConfig\n"
        f"c = PaintConfig(model={str(priors['latent'])!r}, steps=3, views_per_step=2, texture_size=32, seed=8,\n"
        "                 preview_frames=2, preview_size=32)\n"
        f"csdtex.paint({str(ball)!r}, 'a green ball', c, out_dir=sys.argv[1], show_progress=False)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "alone")], check=True, cwd=ROOT)

    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = csdtex.paint(ball, "a green ball", config(7), out_dir=tmp_path / "first", show_progress=False)
    assert torch.equal(torch.get_rng_state(), state), "a paint run changed the global RNG"
    torch.rand(17)  # whatever else the process does in between must not matter
    second = csdtex.paint(ball, "a green ball", config(8), out_dir=tmp_path / "second", show_progress=False)
    assert texture_hash(second.files.textures[0]) == texture_hash(tmp_path / "alone" / "ball.png")
    assert texture_hash(first.files.textures[0]) != texture_hash(second.files.textures[0])


def test_command_line_options_win_over_every_toml_table(tmp_path, priors, ball):
    toml = tmp_path / "options.toml"
    toml.write_text(
        'guidance_method = "sds"\nnegative_prompt = "from the file"\nsteps = 7\nseed = 11\n'
        '[guidance]\nw2_end = 0.25\ncfg_scale = 30.0\n'
        '[cameras]\nfov_deg = [30, 40]\n'
        '[field]\nlog2_hashmap_size = 12\n'
    )
    out = tmp_path / "out"
    result = invoke("paint", str(ball), "a red ball", "--config", str(toml), "--model", str(priors["pixel"]),
                    "--guidance", "csd", "--negative", "from the command line", "--steps", "2", "--seed", "4",
                    "--views-per-step", "1", "--texture-size", "32", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    config = record["config"]
    assert config["guidance"]["method"] == "csd" and config["guidance_method"] == "csd"
    assert config["guidance"]["negative_prompt"] == "from the command line"
    assert config["steps"] == 2 and config["seed"] == 4 and record["metrics"]["steps_run"] == 2
    # The tables' own keys still apply, and the [guidance] table starts from the pixel prior's preset.
    assert config["guidance"]["w2_end"] == 0.25 and config["guidance"]["cfg_scale"] == 30.0
    assert config["guidance"]["t_max_start"] == 0.98 and config["guidance"]["normalize_gradient"] is True
    assert config["cameras"]["fov_deg"] == [30.0, 40.0] and config["field"]["log2_hashmap_size"] == 12


def test_guidance_table_refuses_the_top_level_options_and_checks_types(tmp_path):
    for line, message in [
        ('method = "sds"', "set guidance_method at the top level"),
        ('negative_prompt = "x"', "set negative_prompt at the top level"),
        ("w3 = 1.0", "unknown option 'guidance.w3'"),
        ('w1 = "big"', "'guidance.w1' in .* must be float"),
        ('weighting = "cubic"', "must be one of"),
    ]:
        path = tmp_path / "bad.toml"
        path.write_text(f"[guidance]\n{line}\n")
        with pytest.raises(ConfigError, match=message):
            load_config_file(path)
    with pytest.raises(ConfigError, match="'cameras.fov_deg' .* must be a list of 2 numbers"):
        apply_overrides(PaintConfig(), {"cameras": {"fov_deg": [1, 2, 3]}})
    with pytest.raises(ConfigError, match="unknown option 'field.levels'"):
        apply_overrides(PaintConfig(), {"field": {"levels": 3}})


def test_edit_configs_take_the_same_tables(tmp_path):
    from csdtex.config import EDIT_GUIDANCE, EditConfig

    path = tmp_path / "edit.toml"
    path.write_text("preserve = 2\ntexel_learning_rate_scale = 0.5\n[guidance]\nw2_end = 0.25\n")
    config = load_config_file(path, EditConfig())
    assert isinstance(config, EditConfig) and config.preserve == 2.0
    assert config.guidance == {**EDIT_GUIDANCE, "w2_end": 0.25}  # the table extends the edit's own schedule


def test_guidance_resolution_per_prior_kind():
    config = apply_overrides(PaintConfig(), {"guidance": {"w1": 2.0}, "negative_prompt": ""})
    latent, pixel, tiny = (resolve_guidance(config, kind) for kind in ("latent", "pixel", "tiny"))
    assert latent.w1 == pixel.w1 == 2.0
    assert latent.t_max_start == 0.5 and pixel.t_max_start == 0.98 and tiny.weighting == "one"
    assert latent.negative_prompt == "" and resolve_guidance(PaintConfig(), "tiny").negative_prompt == ""
    assert resolve_guidance(PaintConfig(), "latent").negative_prompt.startswith("oversaturated")


def interrupting_step(real_step, at_call: int):
    """``real_step`` (the optimizer's training step) that raises KeyboardInterrupt, as Ctrl-C would, on call
    ``at_call`` (1-based)."""
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    return step


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory, priors, ball) -> tuple[Path, list[str]]:
    """A checkpoint at step 2 of a 4-step run that was interrupted at step 3, and the options it was made with."""
    out = tmp_path_factory.mktemp("interrupted") / "out"
    options = ["--model", str(priors["latent"]), "--steps", "4", "--views-per-step", "1", "--texture-size", "32",
               "--negative", "dull", "--quiet"]
    config = PaintConfig(model=str(priors["latent"]), steps=4, views_per_step=1, texture_size=32, checkpoint_every=2,
                         negative_prompt="dull")
    real_step = optimize_module.training_step
    optimize_module.training_step = interrupting_step(real_step, at_call=3)
    try:
        with pytest.raises(KeyboardInterrupt):
            csdtex.paint(ball, "a ball", config, out_dir=out, show_progress=False)
    finally:
        optimize_module.training_step = real_step
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 2
    return out, options


@pytest.mark.parametrize(
    "changed, named",
    [
        (["--seed", "5"], "seed"),
        (["--negative", "shiny"], "negative_prompt"),
        (["--guidance", "sds"], "guidance_method"),
        (["--steps", "6"], "steps"),
    ],
)
def test_resume_refuses_a_checkpoint_made_with_other_result_changing_options(ball, interrupted_run, changed, named):
    out, options = interrupted_run
    result = invoke("paint", str(ball), "a ball", "--out", str(out), *options, *changed, "--resume")
    assert result.exit_code == 2 and "made with other settings (not the same: " in result.output
    assert named in result.output
    assert (out / "checkpoint.json").exists() and not (out / "run.json").exists()


def test_resume_refuses_other_schedules_learning_rates_and_cameras(tmp_path, ball, interrupted_run):
    out, options = interrupted_run
    for table, named in [("[guidance]\nw2_end = 0.9\n", "guidance.w2_end"), ("learning_rate = 0.5\n", "learning_rate"),
                         ("[cameras]\ndistance = [1.6, 1.9]\n", "cameras.distance")]:
        toml = tmp_path / "changed.toml"
        toml.write_text(table)
        result = invoke("paint", str(ball), "a ball", "--out", str(out), *options, "--config", str(toml), "--resume")
        assert result.exit_code == 2 and named in result.output, result.output


def test_resume_refuses_a_checkpoint_of_another_mesh(tmp_path, interrupted_run):
    """A checkpoint of one mesh resumed on another of the same name continued silently (new-user test, session 12):
    the identity now holds the mesh's fingerprint."""
    out, options = interrupted_run
    other = tmp_path / "other" / "ball.obj"
    other.parent.mkdir()
    trimesh.creation.icosphere(1).export(other)
    result = invoke("paint", str(other), "a ball", "--out", str(out), *options, "--resume")
    assert result.exit_code == 2 and "made with other settings (not the same: mesh" in result.output, result.output
    assert (out / "checkpoint.json").exists() and not (out / "run.json").exists()


def test_a_damaged_checkpoint_is_refused_in_one_line_not_resumed(tmp_path, ball, interrupted_run):
    """Damaged tensor data with an intact header resumed into NaNs blamed on the options, and hand-edited checkpoints
    gave tracebacks (new-user test, session 15): the checksum and the restore are checked."""
    import shutil

    from safetensors.torch import load_file, save_file

    out, options = interrupted_run
    tensors_file = out / "checkpoint.safetensors"
    for damage in ("bytes", "missing tensor", "shape"):
        copy = shutil.copytree(out, tmp_path / damage.replace(" ", "_"))
        path = copy / tensors_file.name
        if damage == "bytes":
            data = bytearray(path.read_bytes())
            data[-64:] = bytes(64)  # the last tensor's bytes zeroed, the header intact
            path.write_bytes(bytes(data))
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                header = {k: v for k, v in (handle.metadata() or {}).items() if k != "tensors_sha256"}
            tensors = load_file(str(path))
            if damage == "missing tensor":
                del tensors["rng"]
            else:
                key = next(k for k in tensors if k.startswith("field."))
                tensors[key] = torch.zeros(3, 3)
            save_file(tensors, str(path), metadata=header)
        result = invoke("paint", str(ball), "a ball", "--out", str(copy), *options, "--resume")
        assert result.exit_code == 2, (damage, result.output)
        assert "checkpoint" in result.output and "unreadable" in result.output and "Traceback" not in result.output
        assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1, result.output


def test_a_new_run_over_another_runs_checkpoint_does_not_advise_resume(tmp_path, ball, interrupted_run):
    import shutil

    out, options = interrupted_run
    copy = shutil.copytree(out, tmp_path / "copy")
    quiet = [option for option in options if option != "--quiet"]
    result = invoke("paint", str(ball), "a red ball", "--out", str(copy), *quiet)
    assert result.exit_code == 0, result.output
    assert "holds the checkpoint of another run at step 2 (not the same: prompt)" in result.output
    assert "--resume" not in result.output
    same = invoke("paint", str(ball), "a ball", "--out", str(shutil.copytree(out, tmp_path / "same")), *quiet)
    assert same.exit_code == 0 and "run again with --resume to continue from it instead" in same.output


def test_an_interrupt_names_the_kept_checkpoint(tmp_path, priors, ball, monkeypatch):
    """Ctrl-C after a checkpoint: the line says which step was kept and that --resume continues (it only said "no
    partial outputs were kept"; new-user test, session 12)."""
    monkeypatch.setattr(optimize_module, "training_step", interrupting_step(optimize_module.training_step, 3))
    (tmp_path / "every2.toml").write_text("checkpoint_every = 2\n")
    out = tmp_path / "out"
    result = invoke("paint", str(ball), "a ball", "--out", str(out), "--model", str(priors["latent"]), "--steps", "4",
                    "--views-per-step", "1", "--texture-size", "32", "--quiet",
                    "--config", str(tmp_path / "every2.toml"))
    assert result.exit_code == 130
    assert f"the checkpoint at step 2 in {out} was: run the same command with --resume" in result.output
    assert not (out / "run.json").exists()


def test_resume_accepts_what_does_not_change_the_result(ball, interrupted_run):
    out, options = interrupted_run
    result = invoke("paint", str(ball), "a ball", "--out", str(out), *options, "--renderer", "torch", "--resume")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["metrics"]["resumed_from_step"] == 2


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, total, initial):
        self.events.append(("start", total, initial))

    def update(self, done, metrics):
        self.events.append(("update", done, None if metrics is None else sorted(metrics)))

    def close(self):
        self.events.append(("close",))


def test_progress_goes_through_the_callback_with_metrics_every_n_steps(tmp_path, priors, ball):
    progress = RecordingProgress()
    config = PaintConfig(model=str(priors["latent"]), steps=5, views_per_step=1, texture_size=32, metrics_every=2,
                         preview_frames=2, preview_size=32)
    result = csdtex.paint(ball, "a ball", config, out_dir=tmp_path, progress=progress)
    metrics = ["grad_norm", "loss", "t"]
    assert progress.events == [("start", 5, 0), ("update", 1, None), ("update", 2, metrics), ("update", 3, None),
                               ("update", 4, metrics), ("update", 5, metrics), ("close",)]
    history = json.loads(result.run_json.read_text())["history"]
    assert len(history["loss"]) == len(history["grad_norm"]) == len(history["t"]) == 5


def test_a_non_finite_gradient_stops_the_run_with_a_clear_error(tmp_path, priors, ball, monkeypatch):
    from csdtex.guidance import priors as priors_module

    monkeypatch.setattr(priors_module.Prior, "predict_noise",
                        lambda self, x_t, t, e, plan=None: torch.full_like(x_t, float("nan")), raising=False)
    config = PaintConfig(model=str(priors["latent"]), steps=3, views_per_step=1, texture_size=32)
    with pytest.raises(RuntimeError, match="NaN/Inf") as raised:
        csdtex.paint(ball, "a ball", config, out_dir=tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out" / "run.json").exists()
    from csdtex.errors import CsdtexError

    assert isinstance(raised.value, CsdtexError)  # the command line prints one line, no traceback


# ---------------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_cuda_graph_unet_matches_eager(priors):
    from csdtex.guidance import load_prior

    prior = load_prior(str(priors["latent"]), "cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    for batch in (4, 6, 4):  # two shapes, and a replay of the first
        x_t = torch.randn(batch, 4, 8, 8, device="cuda", generator=generator)
        t = torch.randint(20, 500, (batch,), device="cuda", generator=generator)
        embeddings = prior.encode_text(["a red ball"] * batch)
        prior.use_cuda_graphs = False
        eager = prior.predict_noise(x_t, t, embeddings)
        prior.use_cuda_graphs = True
        graphed = prior.predict_noise(x_t, t, embeddings)
        assert torch.allclose(eager, graphed, atol=1e-3, rtol=1e-3), (eager - graphed).abs().max()
    assert prior._graphed_unet.num_graphs == 2


@pytest.mark.gpu
def test_cuda_paint_with_graphs_matches_eager_within_two_levels(tmp_path, priors, ball, monkeypatch):
    from csdtex.guidance import priors as priors_module

    config = PaintConfig(model=str(priors["latent"]), steps=50, views_per_step=2, texture_size=64, device="cuda",
                         renderer="torch", preview_frames=2, preview_size=32)
    graphed = csdtex.paint(ball, "a green ball", config, out_dir=tmp_path / "graphs", show_progress=False)
    real_init = priors_module.Prior.__init__

    def eager_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.use_cuda_graphs = False

    monkeypatch.setattr(priors_module.Prior, "__init__", eager_init)
    eager = csdtex.paint(ball, "a green ball", config, out_dir=tmp_path / "eager", show_progress=False)
    difference = np.abs(graphed.textures[0].astype(int) - eager.textures[0].astype(int))
    print(f"\ngraphs vs eager texture: max difference {difference.max()} levels, mean {difference.mean():.3f}")
    assert difference.max() <= 2


def test_step_renders_with_the_runs_candidate_budget_read_the_host_once_and_change_nothing(tmp_path, priors, ball):
    # The CPU half of test_host_synchronizations_per_step: host reads counted at the Python level (tests/host_reads.py).
    from host_reads import HostReadCounter

    from csdtex.pipeline.prepare import prepare_run
    from csdtex.render import CandidateBudget

    config = PaintConfig(model=str(priors["latent"]), views_per_step=2, texture_size=32, renderer="torch",
                         lit_probability=0.5, checkpoint_every=0)
    run = prepare_run(ball, "a ball", config, tmp_path)
    assert run.candidate_budget is None  # on the CPU a host read costs nothing: every render reads the exact count
    model = seeded_field(run.config.field, 0, run.device)
    generator = torch.Generator().manual_seed(0)
    views = [optimize_module.sample_step_views(run, generator) for _ in range(4)]
    exact = [optimize_module.render_step_views(run, model, step_views) for step_views in views]

    run.candidate_budget = CandidateBudget()  # what prepare_run gives a run on CUDA
    for step_views, image in zip(views, exact):  # learning the budget: overflows are redone, results unchanged
        assert torch.equal(optimize_module.render_step_views(run, model, step_views), image)
    assert run.candidate_budget.overflows >= 1
    for step_views, image in zip(views, exact):
        with HostReadCounter() as reads:
            rendered = optimize_module.render_step_views(run, model, step_views)
        assert reads.names == ["tolist"]  # candidates needed and pixels covered, read together
        assert torch.equal(rendered, image)


@pytest.mark.gpu
@pytest.mark.parametrize("renderer, allowed", [("torch", 1), ("nvdiffrast", 1)])  # the covered-pixel count
def test_host_synchronizations_per_step(tmp_path, priors, ball, renderer, allowed):
    import warnings

    from csdtex.pipeline.objectives import ScoreObjective
    from csdtex.pipeline.prepare import prepare_run
    from csdtex.render import nvdiffrast_raster

    if renderer == "nvdiffrast" and not nvdiffrast_raster.is_available():
        pytest.skip("nvdiffrast is not installed")
    config = PaintConfig(model=str(priors["latent"]), steps=8, views_per_step=2, texture_size=32, device="cuda",
                         renderer=renderer, metrics_every=100, checkpoint_every=0)
    run = prepare_run(ball, "a ball", config, tmp_path)
    model = seeded_field(run.config.field, 0, run.device)
    objective = ScoreObjective(run.prior, run.guidance, run.embeddings)
    generator = torch.Generator().manual_seed(0)
    optimizer = optimize_module.make_optimizer(model, run.config.learning_rate)

    def step(index: int) -> None:
        views = optimize_module.sample_step_views(run, generator)
        loss, metrics = optimize_module.training_step(run, model, objective, views, index / 7, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for index in range(3):  # warm-up: graph capture, allocator growth
        step(index)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for index in range(3, 8):
                step(index)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    print(f"\n{renderer}: {len(syncs)} host synchronizations in 5 steps: {sorted(set(syncs))}")
    assert len(syncs) <= allowed * 5


@pytest.mark.parametrize("table, message", [
    ("[field]\nnum_levels = 0\n", "field.num_levels must be a whole number in 1..32"),
    ("[field]\nlog2_hashmap_size = 40\n", "field.log2_hashmap_size must be a whole number in 8..26"),
    ("[field]\nbase_resolution = 64\nmax_resolution = 32\n", "must be at least field.base_resolution"),
    ("learning_rate = inf\n", "learning rate must be a finite positive number"),
    ("[guidance]\nw1 = nan\n", "guidance.w1 must be a finite number"),
    ("[cameras]\ndistance = [0.0, 0.0]\n", "cameras.distance must be finite numbers low <= high within (0, 1e+06)"),
    ("[cameras]\nfov_deg = [179.0, 360.0]\n", "cameras.fov_deg"),
    ("[cameras]\nelevation_deg = [45.0, -10.0]\n", "cameras.elevation_deg"),
])
def test_nonsense_option_values_get_one_line_before_any_work(tmp_path, ball, table, message):
    """Found by a new-user test (session 12): bad [field] values ended in a traceback (a 2^40-row table tried to
    allocate ~110 GB), inf / NaN weights in a misleading overflow message, nonsense camera ranges ran silently."""
    (tmp_path / "bad.toml").write_text(table)
    result = invoke("paint", str(ball), "a ball", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o"),
                    "--steps", "1", "--quiet")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_python_configs_of_the_wrong_type_get_one_line():
    """PaintConfig built in Python: strings and floats where whole numbers or flags belong failed deep in a library,
    and low_vram="no" counted as true (new-user test, session 12)."""
    from csdtex.cameras import CameraRanges

    for changes, message in [({"steps": "2"}, "steps must be a whole number"),
                             ({"views_per_step": 2.0}, "views_per_step must be a whole number"),
                             ({"learning_rate": "0.01"}, "learning_rate must be a number"),
                             ({"low_vram": "no"}, "low_vram must be True or False"),
                             ({"cameras": {"distance": [1, 2]}}, "cameras must be a csdtex.cameras.CameraRanges"),
                             ({"field": {"num_levels": 4}}, "field must be a csdtex.field.FieldConfig")]:
        with pytest.raises(ConfigError, match=message):
            PaintConfig(**changes).validate()
    PaintConfig(cameras=CameraRanges(distance=(1.0, 2.0)), learning_rate=1, seed=3).validate()  # ints are numbers
