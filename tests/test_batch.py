"""`csdtex batch`: local workers and Ray with a corrupt asset and a killed worker, resume after a killed batch,
output names, bad manifests, folders of meshes, and the HTML report in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from csdtex.batch import BatchOptions, load_manifest, plan_batch, run_batch
from csdtex.batch.manifest import ManifestError
from csdtex.batch.tasks import Started
from csdtex.cli import main
from csdtex.config import PaintConfig, apply_overrides
from csdtex.guidance.random_priors import build_tiny_pixel_folder

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "meshes"
FAST = {"steps": 2, "views_per_step": 1, "texture_size": 32, "preview_frames": 2, "preview_size": 32}


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    return build_tiny_pixel_folder(tmp_path_factory.mktemp("batch_prior") / "pixel")


@pytest.fixture(scope="module")
def fast_toml(tmp_path_factory, prior) -> Path:
    path = tmp_path_factory.mktemp("batch_config") / "fast.toml"
    path.write_text("".join(f"{key} = {value}\n" for key, value in FAST.items()) + f'model = "{prior}"\n')
    return path


def make_assets(folder: Path) -> Path:
    """a/chair.obj, b/chair.obj (the same file name in two folders), crate.obj, broken.obj (corrupt)."""
    for relative in ("a/chair.obj", "b/chair.obj", "crate.obj"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ASSETS / "crate.obj", folder / relative)
    (folder / "broken.obj").write_text("v 1 2\nf 1 2 x\n")
    manifest = folder / "jobs.csv"
    manifest.write_text("mesh,prompt,seed\na/chair.obj,a red object,\nb/chair.obj,a blue object,3\n"
                        "crate.obj,a green object,\nbroken.obj,a yellow object,\n")
    return manifest


def killer(victim: str):
    """An observer that SIGKILLs the worker process running the first attempt at ``victim``."""
    killed = []

    def observe(event, backend) -> None:
        if isinstance(event, Started) and event.name == victim and event.attempt == 1:
            pid = backend.pid_of(event.worker)
            assert pid and pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    observe.killed = killed
    return observe


def check_outcome(outcome, out: Path, paint_line: str, killed: list[int]) -> None:
    by_name = {entry["name"]: entry for entry in outcome.entries}
    assert list(by_name) == ["a_chair", "b_chair", "crate", "broken"]
    assert outcome.counts == {"done": 3, "failed": 1} and outcome.exit_code == 1
    assert by_name["broken"]["error"] == paint_line and by_name["broken"]["attempts"] == 1  # user errors: no retry
    assert killed and by_name["crate"]["status"] == "done" and by_name["crate"]["attempts"] == 2
    for name in ("a_chair", "b_chair", "crate"):
        record = json.loads((out / name / "run.json").read_text())
        assert record["metrics"]["steps_run"] == 2 and (out / name / "batch.json").exists()
    assert json.loads((out / "b_chair" / "run.json").read_text())["seed"] == 3
    assert not (out / "broken").exists() and not (out / ".staging").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["failed"] == 1 and summary["assets"][3]["error"] == paint_line


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, fast_toml):
    """4 assets (one corrupt) on 2 local worker processes; the worker painting 'crate' is killed mid-asset."""
    root = tmp_path_factory.mktemp("local_batch")
    manifest = make_assets(root)
    from csdtex.config import load_config_file

    out = root / "out"
    observe = killer("crate")
    outcome = run_batch(load_manifest(manifest, config=load_config_file(fast_toml)),
                        BatchOptions(out_dir=out, workers=2, retries=1, device="cpu", show_progress=False),
                        observer=observe)
    return root, out, outcome, observe.killed


def test_local_workers_isolate_failures_and_retry_a_killed_worker(local_run, fast_toml):
    root, out, outcome, killed = local_run
    paint = invoke("paint", root / "broken.obj", "a yellow object", "--config", fast_toml, "--out", root / "single")
    assert paint.exit_code == 2
    check_outcome(outcome, out, one_error_line(paint), killed)


def test_changed_rows_are_redone_and_the_rest_skipped(local_run, fast_toml):
    root, out, _, _ = local_run
    from csdtex.config import load_config_file

    manifest = root / "changed.csv"
    manifest.write_text((root / "jobs.csv").read_text().replace("a blue object,3", "a blue object,4"))
    planned = {p.row.name: p.status for p in plan_batch(load_manifest(manifest, config=load_config_file(fast_toml))
                                                        .rows, out)}
    assert planned == {"a_chair": "done", "b_chair": "changed", "crate": "done", "broken": "new"}
    # device and checkpoint frequency do not change outputs: still done
    config = apply_overrides(load_config_file(fast_toml), {"checkpoint_every": 7, "device": "cpu"})
    planned = {p.row.name: p.status for p in plan_batch(load_manifest(root / "jobs.csv", config=config).rows, out)}
    assert planned["a_chair"] == "done"


def test_summary_html_in_headless_chromium(local_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    _, out, _, _ = local_run
    page = (out / "summary.html").read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page  # self-contained
    probe = out / "_probe.html"  # beside summary.html, so relative links resolve the same way
    script = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
              "document.body.dataset.images = imgs.length;"
              "document.body.dataset.loaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; });</script>")
    probe.write_text(page.replace("</body>", script + "</body>"))
    try:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
             "--window-size=1280,4000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        ).stdout
    finally:
        probe.unlink()
    assert 'data-images="3"' in dom and 'data-loaded="3"' in dom, dom[:400]
    failed_row = dom.index('<tr class="failed">')
    assert failed_row < dom.index('<tr class="done">')  # failures on top
    assert "is not a valid OBJ file" in dom[failed_row:dom.index("</tr>", failed_row)]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install csdtex[cluster])")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_backend_isolates_failures_and_retries_a_dead_actor(ray_session, tmp_path, fast_toml):
    from csdtex.config import load_config_file

    manifest = make_assets(tmp_path)
    out = tmp_path / "out"
    observe = killer("crate")
    outcome = run_batch(load_manifest(manifest, config=load_config_file(fast_toml)),
                        BatchOptions(out_dir=out, workers=2, retries=1, device="cpu", ray=True, show_progress=False),
                        observer=observe)
    paint = invoke("paint", tmp_path / "broken.obj", "a yellow object", "--config", fast_toml, "--out", tmp_path / "s")
    check_outcome(outcome, out, one_error_line(paint), observe.killed)
    assert ray_session.is_initialized()  # a Ray the caller started is left running


def test_ray_workers_beyond_the_cluster_are_refused_before_anything_is_written(ray_session, tmp_path, fast_toml):
    """--ray --workers 3 on a 2-CPU cluster hung forever (an actor Ray cannot place never takes its asset; new-user
    test, session 14): refused with one line, and nothing is written into --out."""
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "k").mkdir()
    shutil.copy(ASSETS / "crate.obj", tmp_path / "k" / "crate.obj")
    result = invoke("batch", tmp_path / "k", "--prompt", "a red object", "--config", fast_toml, "--ray",
                    "--workers", "3", "--device", "cpu", "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and "--workers 3 asks for more Ray actors than the cluster can place (2 CPU(s)" \
        in one_error_line(result)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path, fast_toml):
    """--ray-address at a port nobody listens on hung in Ray's own retries for minutes (new-user test, session 14):
    refused at once with one line; nothing is written."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install csdtex[cluster])")
    import socket

    with socket.socket() as probe:  # a free port: bound, then closed, so nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "k").mkdir()
    shutil.copy(ASSETS / "crate.obj", tmp_path / "k" / "crate.obj")
    from csdtex.batch.ray_backend import check_reachable
    from csdtex.errors import CsdtexError

    with pytest.raises(CsdtexError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}", timeout=2.0)
    check_reachable("auto")  # Ray's to resolve
    # the command, in its own process (this one may hold a Ray session from another test, which a batch reuses)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "csdtex", "batch", str(tmp_path / "k"), "--prompt", "a red object",
                             "--config", str(fast_toml), "--ray-address", f"127.0.0.1:{port}", "--out",
                             str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2 and lines[-1].startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out" / "summary.json").exists()


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def test_resume_after_a_killed_batch_redoes_nothing_finished(tmp_path, fast_toml):
    for relative in ("first.obj", "second.obj", "third.obj"):
        shutil.copy(ASSETS / "crate.obj", tmp_path / relative)
    (tmp_path / "zbroken.obj").write_text("not a mesh\n")
    manifest = tmp_path / "jobs.jsonl"
    rows = [{"mesh": "first.obj", "prompt": "a red object"}, {"mesh": "second.obj", "prompt": "a blue object"},
            {"mesh": "third.obj", "prompt": "a green object", "seed": 5},
            {"mesh": "zbroken.obj", "prompt": "a gray object"}]
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--out", str(out), "--config", str(fast_toml), "--workers", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "csdtex.cli", *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "first" / "run.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the batch ended before its first asset"
        time.sleep(0.05)
    workers = _children(process.pid) if Path("/proc").is_dir() else []
    process.kill()
    process.wait()
    finished = {p.parent.name: (p.stat().st_mtime_ns, (p.parent / "batch.json").read_text())
                for p in out.glob("*/run.json")}
    assert "first" in finished
    for folder in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert (folder / "run.json").exists() and (folder / "batch.json").exists()  # nothing half-written
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in workers):  # workers die with the batch
        assert time.monotonic() < deadline, "a worker outlived the killed batch"
        time.sleep(0.1)

    result = invoke(*args)
    assert result.exit_code == 1  # zbroken failed
    assert "failed  zbroken (jobs.jsonl line 4): error: mesh file" in result.output  # the row, to fix it
    assert f"{len(finished)} skipped" in result.output
    for name, (mtime, marker) in finished.items():
        assert (out / name / "run.json").stat().st_mtime_ns == mtime and (out / name / "batch.json").read_text() == marker
    assert sorted(p.name for p in out.iterdir()) == ["first", "second", "summary.html",
                                                     "summary.json", "third"]


def test_output_names_are_safe_unique_and_deterministic(tmp_path):
    for relative in ("x/a/chair.obj", "y/a/chair.obj", "Chair.obj", "lamp.obj", "summary.json.obj"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("v 0 0 0\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("mesh,prompt,out\nx/a/chair.obj,p,\ny/a/chair.obj,p,\nChair.obj,p,\nlamp.obj,p,\n"
                        "lamp.obj,q,\nx/a/chair.obj,p,chair\nsummary.json.obj,p,\n")
    names = [row.name for row in load_manifest(manifest).rows]
    assert names == ["x_a_chair", "y_a_chair", "Chair-2", "lamp", "lamp-2", "chair", "summary.json-2"]
    assert names == [row.name for row in load_manifest(manifest).rows]
    assert len({name.lower() for name in names}) == len(names)


@pytest.mark.parametrize(
    "content, message",
    [
        ("prompt,seed\na red object,1\n", "jobs.csv line 2 has no mesh"),
        ("mesh,prompt\ncrate.obj,\n", "jobs.csv line 2 has no prompt"),
        ("mesh,prompt,stepz\ncrate.obj,a red object,3\n", "unknown column 'stepz'"),
        ("mesh,prompt,stepz\ncrate.obj,a red object,\n", "jobs.csv line 1: unknown column 'stepz'"),
        ("mesh,prompt,steps\ncrate.obj,a red object,many\n", "option 'steps' in jobs.csv line 2 must be int"),
        ("mesh,prompt,steps\ncrate.obj,a red object,0\n", "jobs.csv line 2: steps must be at least 1"),
        ("mesh,prompt\n../outside.obj,a red object\n", "is outside the allowed folders"),
        ("mesh,prompt\n/etc/hosts.obj,a red object\n", "is outside the allowed folders"),
        ("mesh,prompt,out\ncrate.obj,a red object,../x\n", "must be a plain folder name"),
        ("mesh,prompt,out\ncrate.obj,a red object,/tmp/x\n", "must be a plain folder name"),
        ("mesh,prompt,out\ncrate.obj,a,x\ncrate.obj,b,X\n", "out 'X' is already used by jobs.csv line 2"),
        ("mesh,prompt,device\ncrate.obj,a red object,cpu\n", "device is set for the whole batch"),
        ("mesh,prompt,source\ncrate.obj,a red object,tex.png\n", "column 'source' is for --task edit"),
        ("mesh,prompt,preserve\ncrate.obj,a red object,1\n", "column 'preserve' is an option of csdtex edit"),
        ("mesh,prompt\n", "has no rows"),
        ("", "is empty"),
    ],
)
def test_bad_manifests_give_one_line_and_write_nothing(tmp_path, content, message):
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "jobs.csv").write_text(content)
    result = invoke("batch", tmp_path / "jobs.csv", "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_other_bad_inputs_give_one_line_and_write_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "bad.jsonl").write_text('{"mesh": "crate.obj", "prompt": "x"}\n{"mesh": \n')
    (tmp_path / "wrongtype.jsonl").write_text('{"mesh": "crate.obj", "prompt": "x", "unwrap": "yes"}\n')
    (tmp_path / "latin1.csv").write_bytes("mesh,prompt\ncrate.obj,caf\xe9\n".encode("latin-1"))
    (tmp_path / "edit.csv").write_text("mesh,prompt\ncrate.obj,a red object\n")
    (tmp_path / "edit_ok.csv").write_text("mesh,prompt,source\ncrate.obj,a red object,crate.obj\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "noprompts").mkdir()
    shutil.copy(ASSETS / "crate.obj", tmp_path / "noprompts" / "crate.obj")
    cases = [
        (["batch", tmp_path / "missing.csv"], "manifest", "does not exist"),
        (["batch", tmp_path / "bad.jsonl"], "", "bad.jsonl line 2 is not valid JSON"),
        (["batch", tmp_path / "wrongtype.jsonl"], "", "option 'unwrap' in wrongtype.jsonl line 1 must be bool"),
        (["batch", tmp_path / "latin1.csv"], "", "is not UTF-8 text"),
        (["batch", tmp_path / "crate.obj"], "", "unsupported extension '.obj'"),
        (["batch", tmp_path / "empty", "--prompt", "x"], "", "holds no mesh files"),
        (["batch", tmp_path / "noprompts"], "", "has no prompts.csv: pass --prompt"),
        (["batch", tmp_path / "edit.csv", "--task", "edit"], "", "line 2 has no source"),
        (["batch", tmp_path / "edit.csv", "--prompt", "x"], "", "--prompt is for a folder of meshes"),
        (["batch", tmp_path / "edit.csv", "--root", tmp_path / "nowhere"], "", "is not a folder"),
        (["batch", tmp_path / "edit.csv", "--device", "tpu"], "", "unknown device"),
        # batch-wide options a paint refuses up front: one line before anything runs, not one failure per asset
        (["batch", tmp_path / "noprompts", "--prompt", "x", "--renderer", "nvdiffrast", "--device", "cpu"], "",
         "folder noprompts/crate.obj: the nvdiffrast renderer needs a CUDA device"),
        (["batch", tmp_path / "noprompts", "--prompt", "x", "--model", tmp_path / "no_such_model"], "",
         "no_such_model does not exist"),
        (["batch", tmp_path / "schedule.csv"], "", "schedule.csv line 2: "),
    ]
    (tmp_path / "schedule.csv").write_text("mesh,prompt,guidance.t_min_start\ncrate.obj,a red object,0.99\n")
    import importlib.util

    if importlib.util.find_spec("csdtex.editing") is None:
        cases.append((["batch", tmp_path / "edit_ok.csv", "--task", "edit"], "",
                      "csdtex edit is not available in this version"))
    for args, _, message in cases:
        for dry in ([], ["--dry-run"]):
            result = invoke(*args, "--out", out, *dry)
            assert result.exit_code == 2, (args, result.output)
            assert message in one_error_line(result), (args, result.output)
            assert not out.exists(), args

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = invoke("batch", tmp_path / "edit.csv", "--ray", "--out", out)
    assert result.exit_code == 2 and "pip install csdtex[cluster]" in one_error_line(result)
    assert not out.exists()


def test_folder_with_prompts_csv_and_with_prompt(tmp_path):
    folder = tmp_path / "props"
    for relative in ("crate.obj", "sub/crate.obj", "lamp.glb", ".hidden/x.obj"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ASSETS / "crate.obj", folder / relative)
    (folder / "notes.txt").write_text("not a mesh")
    rows = load_manifest(folder, prompt="a gray object").rows
    assert [(row.name, row.prompt) for row in rows] == [
        ("crate", "a gray object"), ("lamp", "a gray object"), ("sub_crate", "a gray object")]

    (folder / "prompts.csv").write_text("mesh,prompt,steps\ncrate.obj,a red crate,12\nsub/crate.obj,a blue crate,\n")
    with pytest.raises(ManifestError, match=r"1 mesh\(es\) in .* have no row in prompts.csv \(lamp.glb\)"):
        load_manifest(folder)
    rows = load_manifest(folder, prompt="a gray object", config=PaintConfig(steps=3)).rows
    assert [(row.name, row.prompt, row.config.steps) for row in rows] == [
        ("crate", "a red crate", 12), ("sub_crate", "a blue crate", 3), ("lamp", "a gray object", 3)]

    result = invoke("batch", folder, "--prompt", "a gray object", "--dry-run", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "3 assets in folder" in result.output and "3 to run" in result.output
    assert "new      sub_crate" in result.output and not (tmp_path / "out").exists()


def test_batch_output_folder_not_written_by_batch_is_refused(tmp_path):
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "jobs.csv").write_text("mesh,prompt\ncrate.obj,a red object\n")
    (tmp_path / "out" / "crate").mkdir(parents=True)
    result = invoke("batch", tmp_path / "jobs.csv", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "was not written by csdtex batch" in one_error_line(result)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["crate"]


def test_edit_batch_edits_each_row_inside_its_mask(tmp_path, prior, fast_toml):
    """``--task edit``: ``source`` is the text of the texture as it is now (like ``csdtex edit --source``) and
    ``mask`` a PNG next to the manifest. Every row failed with an internal error while ``source`` was read as a
    file path (README walkthrough, session 12)."""
    import numpy as np
    from PIL import Image

    from csdtex.painting import paint

    config = apply_overrides(PaintConfig(**FAST, model=str(prior), device="cpu"), {})
    painted = paint(ASSETS / "crate.obj", "a red object", config, out_dir=tmp_path / "painted", show_progress=False)
    texture = np.asarray(Image.open(painted.files.textures[0]).convert("RGB"))
    mask = np.zeros(texture.shape[:2], np.uint8)
    mask[:, : texture.shape[1] // 2] = 255  # the left half may change
    Image.fromarray(mask).save(tmp_path / "painted" / "left.png")
    manifest = tmp_path / "painted" / "edits.csv"
    manifest.write_text("mesh,prompt,source,mask,out\ncrate.obj,a blue object,a red object,left.png,crate_blue\n")
    out = tmp_path / "out"
    result = invoke("batch", manifest, "--task", "edit", "--out", out, "--config", fast_toml, "--workers", "1",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert "done    crate_blue" in result.output and "internal error" not in result.output
    edited = np.asarray(Image.open(out / "crate_blue" / "crate.png").convert("RGB"))
    assert edited.shape == texture.shape
    np.testing.assert_array_equal(edited[:, texture.shape[1] // 2 + 3:], texture[:, texture.shape[1] // 2 + 3:])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["done"] == 1
    marker = json.loads((out / "crate_blue" / "batch.json").read_text())
    assert marker["settings"]["source"] == "a red object" and marker["settings"]["mask"].endswith("left.png")


def test_a_rerun_redoes_assets_whose_buffers_or_textures_changed(tmp_path, fast_toml):
    """Done-ness covers every file the mesh load read: a re-exported .bin of a .gltf (its JSON unchanged) and a
    repainted texture of an OBJ make their assets 'changed' (new-user test, session 13: both were skipped as done,
    and an edit batch then kept texels that no longer matched its input)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from gltf_files import GltfBuilder, quad

    from csdtex.config import load_config_file

    positions, faces = quad()
    builder = GltfBuilder()
    builder.mesh([builder.primitive(positions, faces, positions[:, :2].astype(np.float64))])
    builder.write_gltf(tmp_path / "panel.gltf")
    (tmp_path / "box.mtl").write_text("newmtl skin\nmap_Kd skin.png\n")
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "skin.png")
    (tmp_path / "box.obj").write_text("mtllib box.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\n"
                                      "usemtl skin\nf 1/1 2/2 3/3\n")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("mesh,prompt\npanel.gltf,a red object\nbox.obj,a blue object\n")
    out = tmp_path / "out"
    result = invoke("batch", manifest, "--config", fast_toml, "--out", out, "--workers", "1", "--device", "cpu",
                    "--quiet")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "box" / "run.json").read_text())
    assert [f["path"] for f in record["mesh"]["files"]] == ["box.obj", "box.mtl", "skin.png"]
    rows = load_manifest(manifest, config=load_config_file(fast_toml)).rows

    def statuses() -> dict[str, str]:
        return {p.row.name: p.status for p in plan_batch(rows, out)}

    assert statuses() == {"panel": "done", "box": "done"}
    binary = bytearray((tmp_path / "panel.bin").read_bytes())
    binary[-4:] = bytes(4)  # a re-exported buffer (the last UV changes), the .gltf's JSON untouched
    (tmp_path / "panel.bin").write_bytes(bytes(binary))
    Image.fromarray(np.full((8, 8, 3), 30, np.uint8)).save(tmp_path / "skin.png")
    assert statuses() == {"panel": "changed", "box": "changed"}


def test_adding_a_row_keeps_a_finished_assets_folder(tmp_path, fast_toml):
    """A finished a/chair.obj lives in chair/; adding b/chair.obj derives a_chair / b_chair, but the finished asset
    keeps its folder and stays done (new-user test, session 13: it was painted again as a_chair and chair/ was left
    behind, unlisted)."""
    from csdtex.config import load_config_file

    for relative in ("a/chair.obj", "b/chair.obj"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nf 1/1 2/2 3/3\n")
    (tmp_path / "one.csv").write_text("mesh,prompt\na/chair.obj,a red object\n")
    out = tmp_path / "out"
    result = invoke("batch", tmp_path / "one.csv", "--config", fast_toml, "--out", out, "--workers", "1",
                    "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert (out / "chair" / "run.json").is_file()
    (tmp_path / "two.csv").write_text("mesh,prompt\na/chair.obj,a red object\nb/chair.obj,a blue object\n")
    rows = load_manifest(tmp_path / "two.csv", config=load_config_file(fast_toml)).rows
    assert [row.name for row in rows] == ["a_chair", "b_chair"]
    planned = {p.row.name: p.status for p in plan_batch(rows, out)}
    assert planned == {"chair": "done", "b_chair": "new"}
    # An out cell is kept as given.
    (tmp_path / "named.csv").write_text("mesh,prompt,out\na/chair.obj,a red object,first\n")
    rows = load_manifest(tmp_path / "named.csv", config=load_config_file(fast_toml)).rows
    assert [p.row.name for p in plan_batch(rows, out)] == ["first"]


def test_another_meshs_finished_asset_is_not_replaced_without_overwrite(tmp_path, fast_toml):
    """Two manifests with a vase.obj from different folders, into one --out: the second refuses to replace the
    first's finished vase/ (new-user test, session 13: it replaced it silently) unless --overwrite."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "vase.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 1 1\n"
                                                    "f 1/1 2/2 3/3\n")
        (tmp_path / folder / "jobs.csv").write_text("mesh,prompt\nvase.obj,a red object\n")
    out = tmp_path / "out"
    common = ["--config", fast_toml, "--out", out, "--workers", "1", "--device", "cpu", "--quiet"]
    assert invoke("batch", tmp_path / "a" / "jobs.csv", *common).exit_code == 0
    marker = (out / "vase" / "batch.json").read_text()
    result = invoke("batch", tmp_path / "b" / "jobs.csv", *common)
    assert result.exit_code == 2 and "holds the finished asset of another mesh" in result.output
    assert "--overwrite" in one_error_line(result) and (out / "vase" / "batch.json").read_text() == marker
    result = invoke("batch", tmp_path / "b" / "jobs.csv", *common, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "vase" / "batch.json").read_text())["mesh_path"] == str(tmp_path / "b" / "vase.obj")


def test_finished_assets_keep_their_folders_when_rows_or_meshes_are_added(tmp_path):
    """New-user tests (session 14): a mesh of the same stem added to a folder batch, or a row of the same mesh
    inserted into a manifest, takes a new name; the finished assets keep theirs and stay done (it refused the whole
    batch / repainted every row); a row whose prompt changed repaints its own folder."""
    from csdtex.batch.runner import MARKER

    def finish(out: Path, planned) -> None:  # what a finished run leaves: batch.json with the row's settings
        for asset in planned:
            (out / asset.row.name).mkdir(parents=True, exist_ok=True)
            (out / asset.row.name / MARKER).write_text(json.dumps({
                "settings_hash": asset.settings_hash, "settings": asset.settings, "mesh_stat": asset.mesh_stat,
                "mesh_path": os.path.abspath(asset.row.mesh),
                "mesh_relative": os.path.relpath(os.path.abspath(asset.row.mesh), os.path.abspath(out))}))

    def plan(source, **kwargs) -> dict[str, tuple[str, str]]:
        return {a.row.name: (a.status, a.row.prompt)
                for a in plan_batch(load_manifest(source, **kwargs).rows, tmp_path / "out")}

    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(ASSETS / "crate.obj", folder / "crate.ply")  # any bytes: planning only hashes the file
    out = tmp_path / "out"
    finish(out, plan_batch(load_manifest(folder, prompt="a red object").rows, out))
    shutil.copy(ASSETS / "crate.obj", folder / "crate.obj")  # same stem, sorts first: derived name "crate"
    planned = {a.row.mesh.name: (a.row.name, a.status)
               for a in plan_batch(load_manifest(folder, prompt="a red object").rows, out)}
    assert planned == {"crate.ply": ("crate", "done"), "crate.obj": ("crate-2", "new")}

    shutil.rmtree(out)
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("mesh,prompt\ncrate.obj,a red object\ncrate.obj,a blue object\n")
    finish(out, plan_batch(load_manifest(jobs).rows, out))
    jobs.write_text("mesh,prompt\ncrate.obj,a green object\ncrate.obj,a red object\ncrate.obj,a blue object\n")
    assert plan(jobs) == {"crate": ("done", "a red object"), "crate-2": ("done", "a blue object"),
                          "crate-3": ("new", "a green object")}
    jobs.write_text("mesh,prompt\ncrate.obj,a blue object\n")  # the red row deleted
    assert plan(jobs) == {"crate-2": ("done", "a blue object")}
    jobs.write_text("mesh,prompt\ncrate.obj,an orange object\n")  # the prompt changed: repainted in place
    assert plan(jobs) == {"crate": ("changed", "an orange object")}  # its own derived name's folder


def test_a_moved_project_stays_done_and_overwrite_low_vram_do_not_redo_assets(tmp_path, fast_toml):
    """A project folder moved (or reached through another path) keeps its finished assets done: batch.json records
    the mesh relative to --out; --overwrite, --low-vram and --compile-encoder (same results) redo nothing."""
    project = tmp_path / "project"
    (project / "k").mkdir(parents=True)
    shutil.copy(ASSETS / "crate.obj", project / "k" / "crate.obj")
    common = ["--prompt", "a red object", "--config", fast_toml, "--workers", "1", "--device", "cpu", "--quiet"]
    assert invoke("batch", project / "k", *common, "--out", project / "out").exit_code == 0
    moved = tmp_path / "moved"
    project.rename(moved)
    result = invoke("batch", moved / "k", *common, "--out", moved / "out", "--dry-run", "--overwrite",
                    "--low-vram")
    assert result.exit_code == 0 and "done     crate" in result.output and "0 to run, 1 done" in result.output, \
        result.output


def test_a_worker_that_reports_success_without_outputs_fails_the_asset(tmp_path):
    """A Ray actor that wrote its outputs elsewhere (another working directory) reported "done" with an empty
    folder, and reruns skipped it (new-user test, session 14): the commit now fails such an asset."""
    from csdtex.batch.runner import _commit, plan_batch as plan
    from csdtex.batch.tasks import AssetTask, TaskResult

    (tmp_path / "k").mkdir()
    shutil.copy(ASSETS / "crate.obj", tmp_path / "k" / "crate.obj")
    [asset] = plan(load_manifest(tmp_path / "k", prompt="a red object").rows, tmp_path / "out")
    task = AssetTask(row=asset.row, staging=tmp_path / "out" / ".staging" / "crate.x", attempt=1, token="x")
    result = TaskResult(name="crate", token="x", ok=True, attempt=1, worker="ray actor 0", seconds=1.0)
    committed = _commit(task, asset, result, tmp_path / "out")
    assert not committed.ok and not committed.retryable and "--out must be a folder every node sees" in \
        committed.error
    assert not (tmp_path / "out" / "crate").exists()


def test_edit_options_an_edit_refuses_stop_the_batch_up_front(tmp_path):
    """`--task edit --unwrap` ran every row and recorded each as failed (new-user test, session 14): one line naming
    the first row, nothing written."""
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "edits.csv").write_text("mesh,prompt,source\ncrate.obj,a blue object,a red object\n")
    result = invoke("batch", tmp_path / "edits.csv", "--task", "edit", "--unwrap", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "edits.csv line 2: an edit keeps the mesh's own UVs" in one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_edit_batches_take_edit_options_and_earlier_records_stay_done(tmp_path, fast_toml):
    """`batch --task edit` takes `preserve` from a config file shared with `csdtex edit` and from a column (it
    refused both: the batch built a PaintConfig; new-user test, session 14). A batch.json written by an earlier
    version (its settings with low_vram / overwrite, hashed otherwise) still counts as done."""
    from csdtex.batch.runner import MARKER

    box = export_all_box(tmp_path)
    (tmp_path / "edits.csv").write_text(f"mesh,prompt,source,preserve\n{box.name},a blue box,a red box,0.3\n")
    config = tmp_path / "edit.toml"
    config.write_text(fast_toml.read_text() + "preserve = 0.2\n")
    result = invoke("batch", tmp_path / "edits.csv", "--task", "edit", "--config", config, "--out", tmp_path / "out",
                    "--workers", "1", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "box" / "run.json").read_text())["edit"]["preserve"] == 0.3  # the cell
    marker_path = tmp_path / "out" / "box" / MARKER
    marker = json.loads(marker_path.read_text())
    marker["settings"]["config"].update(low_vram=False, overwrite=None)  # as an earlier version recorded it
    marker["settings_hash"] = "0" * 64
    marker_path.write_text(json.dumps(marker))
    result = invoke("batch", tmp_path / "edits.csv", "--task", "edit", "--config", config, "--out", tmp_path / "out",
                    "--dry-run")
    assert "0 to run, 1 done" in result.output, result.output


def export_all_box(folder: Path) -> Path:
    """A textured box (crate.obj with one flat red texture) as OBJ+MTL+PNG in ``folder``."""
    from csdtex.export import export_all
    from csdtex.mesh import load_mesh

    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 220
    return export_all(load_mesh(ASSETS / "crate.obj"), [red], folder, "box").obj


def test_a_semicolon_separated_manifest_gets_a_hint(tmp_path):
    (tmp_path / "jobs.csv").write_text("mesh;prompt\nvase.obj;a red object\n")
    result = invoke("batch", tmp_path / "jobs.csv", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "separate its columns with ';'" in one_error_line(result)


def test_dry_run_names_rows_whose_mesh_is_missing(tmp_path):
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "jobs.csv").write_text("mesh,prompt\ncrate.obj,a red object\ngone.obj,a blue object\n")
    result = invoke("batch", tmp_path / "jobs.csv", "--dry-run", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "missing  gone" in result.output and "new      crate" in result.output
    assert "1 to run, 0 done, 1 with a missing mesh file (they would fail)" in result.output


def test_batch_and_single_runs_never_write_into_one_folder(tmp_path, fast_toml):
    """A batch into a folder a paint holds is refused with the lock's message (it said "not written by csdtex
    batch"); a batch does not replace an asset folder that another run rewrote while it ran (new-user test,
    session 13: the batch replaced it silently)."""
    from csdtex.config import load_config_file
    from csdtex.pipeline.outputs import run_folder_lock

    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    (tmp_path / "jobs.csv").write_text("mesh,prompt\ncrate.obj,a red object\n")
    out = tmp_path / "out"
    with run_folder_lock(out):
        result = invoke("batch", tmp_path / "jobs.csv", "--config", fast_toml, "--out", out, "--workers", "1",
                        "--device", "cpu", "--quiet")
    assert result.exit_code == 2 and "another csdtex run (a batch, paint or edit) is writing" in one_error_line(result)
    config = load_config_file(fast_toml)
    outcome = run_batch(load_manifest(tmp_path / "jobs.csv", config=config),
                        BatchOptions(out_dir=out, workers=1, device="cpu", show_progress=False))
    assert outcome.counts == {"done": 1}
    (tmp_path / "again.csv").write_text("mesh,prompt\ncrate.obj,a blue object\n")  # changed: redone

    def paint_meanwhile(event, backend) -> None:  # another run rewrites the asset's folder while the batch paints
        if isinstance(event, Started):
            (out / "crate" / "batch.json").unlink()
            (out / "crate" / "mine.txt").write_text("a paint's outputs")

    outcome = run_batch(load_manifest(tmp_path / "again.csv", config=config),
                        BatchOptions(out_dir=out, workers=1, device="cpu", show_progress=False),
                        observer=paint_meanwhile)
    [entry] = outcome.entries
    assert entry["status"] == "failed" and "was written by another csdtex run while the batch ran" in entry["error"]
    assert (out / "crate" / "mine.txt").read_text() == "a paint's outputs"  # not replaced


def test_reruns_keep_user_files_and_spelled_out_defaults_and_see_links_and_other_runs(tmp_path, fast_toml):
    """New-user test, session 16: (1) the same folders reached through a symbolic link and by their real path are
    one project; (2) options the first run left to the preset, now spelled out with the values it resolved
    (run.json), keep the asset done; (3) a redone asset keeps the files the user put into its folder, and files in
    .staging that are not the batch's stay; (4) a csdtex paint into an asset's folder makes the batch redo it
    instead of reporting the paint's outputs under the batch's settings."""
    real = tmp_path / "real"  # the project: real/in holds the mesh; its output folder is a link onto a bigger disk
    (real / "in").mkdir(parents=True)
    shutil.copy(ASSETS / "crate.obj", real / "in" / "crate.obj")
    (tmp_path / "disk" / "store").mkdir(parents=True)
    (real / "out").symlink_to(tmp_path / "disk" / "store", target_is_directory=True)
    common = ["--prompt", "a red object", "--config", fast_toml, "--workers", "1", "--device", "cpu", "--quiet"]
    assert invoke("batch", real / "in", *common, "--out", real / "out").exit_code == 0
    asset = real / "out" / "crate"

    def dry(*extra, out=real / "out", source=real / "in"):
        result = invoke("batch", source, *common, "--out", out, "--dry-run", *extra)
        assert result.exit_code == 0, result.output
        return result.output.split()[0]

    assert dry(out=tmp_path / "disk" / "store") == "done"  # (1) the output folder by its real path
    (tmp_path / "in_link").symlink_to(real / "in", target_is_directory=True)
    assert dry(source=tmp_path / "in_link") == "done"  # the mesh through a link
    resolved = json.loads((asset / "run.json").read_text())
    assert resolved["renderer"] == "torch"
    assert dry("--renderer", "torch") == "done"  # (2) "auto" resolved to torch
    t_max = resolved["config"]["guidance"]["t_max_start"]
    spelled = tmp_path / "spelled.toml"
    spelled.write_text(fast_toml.read_text() + f"[guidance]\nt_max_start = {t_max}\n")
    assert dry("--config", spelled) == "done"
    spelled.write_text(fast_toml.read_text() + f"[guidance]\nt_max_start = {t_max - 0.1}\n")
    assert dry("--config", spelled) == "changed" and dry("--renderer", "torch", "--seed", "5") == "changed"
    (asset / "notes_from_artist.txt").write_text("keep me")  # (3)
    (asset / "crate_retouched.png").write_bytes((asset / "crate.png").read_bytes())
    (real / "out" / ".staging").mkdir()
    (real / "out" / ".staging" / "deploy.txt").write_text("not the batch's")
    blue = [c if c != "a red object" else "a blue object" for c in common]
    assert invoke("batch", real / "in", *blue, "--out", real / "out").exit_code == 0
    assert json.loads((asset / "run.json").read_text())["prompt"] == "a blue object"
    assert (asset / "notes_from_artist.txt").read_text() == "keep me" and (asset / "crate_retouched.png").is_file()
    assert (real / "out" / ".staging" / "deploy.txt").read_text() == "not the batch's"
    assert dry(*blue[:2]) == "done"
    run_record = asset / "run.json"  # (4) as a csdtex paint into the folder leaves it: another run.json
    run_record.write_text(run_record.read_text().replace('"a blue object"', '"a green object"'))
    assert dry(*blue[:2]) == "changed"


def test_a_finished_assets_warnings_are_shown_with_it():
    """A paint whose prompt the prior could not read printed only "done" in a batch (new-user test, session 16):
    each warning of the run follows its done line, also without a log (above the bars)."""
    from csdtex.batch.display import BatchDisplay
    from csdtex.batch.tasks import TaskResult

    lines: list[str] = []
    display = BatchDisplay(2, 1, steps=False, bars=False, log=lines.append)
    display.finished(TaskResult(name="a", token="t", attempt=1, ok=True, seconds=1.0,
                                warnings=["the built-in prior does not know 'bronze'\nsecond line"]))
    display.finished(TaskResult(name="b", token="u", attempt=1, ok=True, seconds=2.0))
    assert lines == ["done    a (1.0 s)", "warning a: the built-in prior does not know 'bronze'", "done    b (2.0 s)"]


def test_ray_init_keeps_the_commands_termination_handler(monkeypatch):
    """ray.init installs its own SIGTERM handler (a C++ stack dump, exit status 1 or an abort; new-user test, session
    16): the batch puts the command's handler back, and a termination that a library re-raised as a plain
    KeyboardInterrupt is still reported as one (exit 143)."""
    from csdtex import cli, entry
    from csdtex.batch.ray_backend import _signal_handlers_kept

    def mine(number, frame):
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with _signal_handlers_kept():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init replaces it
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.setattr(entry, "_received", [int(signal.SIGTERM)])
    assert cli._interrupt_status(KeyboardInterrupt()) == 143 and cli._interrupted(KeyboardInterrupt()) == \
        "stopped by SIGTERM"
    monkeypatch.setattr(entry, "_received", [])
    assert cli._interrupt_status(KeyboardInterrupt()) == 130


def test_a_folder_scan_names_what_it_leaves_out(tmp_path):
    """FBX / USDZ files, linked folders and csdtex output folders were left out of a folder batch without a word
    (new-user test, session 16), and any folder holding another tool's run.json was taken for csdtex output."""
    folder = tmp_path / "in"
    (folder / "props").mkdir(parents=True)
    shutil.copy(ASSETS / "crate.obj", folder / "props" / "crate.obj")
    for name in ("barrel.fbx", "tree.dae", "car.usdz"):
        (folder / "props" / name).write_bytes(b"not read")
    (folder / "characters").mkdir()
    shutil.copy(ASSETS / "crate.obj", folder / "characters" / "hero.obj")
    (folder / "characters" / "run.json").write_text('{"frames": 24}')  # another tool's file of that name
    (folder / "painted").mkdir()
    shutil.copy(ASSETS / "crate.obj", folder / "painted" / "crate.obj")
    (folder / "painted" / "run.json").write_text('{"prompt": "x", "outputs": {}, "config": {}}')  # csdtex's
    (tmp_path / "library").mkdir()
    shutil.copy(ASSETS / "crate.obj", tmp_path / "library" / "shared.obj")
    (folder / "library").symlink_to(tmp_path / "library", target_is_directory=True)
    result = invoke("batch", folder, "--prompt", "a red object", "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("note: left out 3 file(s) of formats csdtex does not read (.dae, .fbx, .usdz")
               for line in lines), result.output
    assert any(line.startswith("note: left out linked folder(s) library") for line in lines)
    assert any(line.startswith("note: left out 1 folder(s) of csdtex outputs (painted)") for line in lines)
    assert "characters/hero.obj" in result.output and "2 assets in folder" in result.output


def test_empty_options_and_whole_floats_in_manifests(tmp_path):
    """--out "" (an unset shell variable) wrote into the working directory; --prompt "" blamed a row; a pandas CSV's
    seed 7.0 was refused (new-user test, session 16)."""
    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    for args, message in ((["batch", tmp_path, "--prompt", "x", "--out", ""], "--out is empty"),
                          (["batch", tmp_path, "--prompt", " "], "--prompt is empty"),
                          (["paint", tmp_path / "crate.obj", "x", "--out", " "], "--out is empty"),
                          (["bench", "seams", "proc:mismatch", "--json", ""], "--json is empty")):
        result = invoke(*args)
        assert result.exit_code == 2 and message in one_error_line(result), (args, result.output)
    (tmp_path / "pd.csv").write_text("mesh,prompt,seed,steps\ncrate.obj,a red object,7.0,\ncrate.obj,x,,3\n")
    rows = load_manifest(tmp_path / "pd.csv").rows
    assert rows[0].config.seed == 7 and isinstance(rows[0].config.seed, int) and rows[1].config.steps == 3
    (tmp_path / "half.csv").write_text("mesh,prompt,steps\ncrate.obj,a red object,7.5\n")
    with pytest.raises(ManifestError, match="option 'steps' in .*half.csv line 2 must be int"):
        load_manifest(tmp_path / "half.csv")
    assert not list(Path.cwd().glob("summary.json"))


def test_a_report_the_batch_did_not_write_is_not_replaced(tmp_path):
    """A hand-written summary.html in --out was silently replaced by the batch's report (new-user test, session 16)."""
    from csdtex.batch.report import check_summaries_are_ours

    shutil.copy(ASSETS / "crate.obj", tmp_path / "crate.obj")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.html").write_text("<html>the team's page</html>")
    result = invoke("batch", tmp_path, "--prompt", "a red object", "--out", out)
    assert result.exit_code == 2 and "summary.html was not written by csdtex batch" in one_error_line(result)
    assert (out / "summary.html").read_text() == "<html>the team's page</html>"
    (out / "summary.html").unlink()
    (out / "summary.json").write_text('{"deploy": true}')
    result = invoke("batch", tmp_path, "--prompt", "a red object", "--out", out)
    assert result.exit_code == 2 and "summary.json was not written by csdtex batch" in one_error_line(result)
    (out / "summary.json").write_text('{"counts": {}, "assets": []}')  # an earlier version's report: no tag
    (out / "summary.html").write_text("<html>an earlier batch report</html>")
    check_summaries_are_ours(out)
