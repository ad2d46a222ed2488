"""Tests of benchmarks/fidelity.py's run tools: ``--time-limit`` (a cut run still writes what finished) and
``--compare`` (paired comparison of two runs, from their JSONs or from the log of a run cut off before writing one)."""

from __future__ import annotations

import json
import types

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def fidelity():
    return load_benchmark("fidelity")


def _run(method: str, mesh: str, prompt: str, color: bool, pattern: bool, prompt_set: str = "default") -> dict:
    return {"method": method, "mesh": mesh, "prompt": prompt, "prompt_set": prompt_set, "prompt_index": 0,
            "color_correct": color, "pattern_correct": pattern}


def test_compare_pairs_items_from_json_and_cut_off_logs(fidelity, tmp_path, capsys):
    prompts = [f"prompt {i}" for i in range(6)]
    base = [_run("csd", "vase", p, True, i % 2 == 0) for i, p in enumerate(prompts)]
    base.append(_run("sds", "vase", prompts[0], False, False))  # another method: not compared
    (tmp_path / "base.json").write_text(json.dumps({"runs": base}))
    other = [_run("csd", "vase", p, i < 3, True) for i, p in enumerate(prompts[:5])]  # the 6th item never ran
    (tmp_path / "other.json").write_text(json.dumps({"runs": other}))
    # the same items as a log of a run that was cut off: the runner's per-item lines amid other output
    log_lines = ["building ...", "[2/9] csd       vase   \"it's a prompt\": colours ok ['red'], pattern NO dots (1 s)"]
    log_lines += [f"[{i + 3}/9] {r['method']:<9} {r['mesh']:<6} '{r['prompt']}': colours "
                  f"{'ok' if r['color_correct'] else 'NO'} ['red'], pattern {'ok' if r['pattern_correct'] else 'NO'}"
                  f" solid (4.2 s)" for i, r in enumerate(other)]
    (tmp_path / "other.log").write_text("\n".join(log_lines) + "\nTraceback: killed\n")
    result = fidelity.main(["--compare", str(tmp_path / "base.json"), str(tmp_path / "other.json"),
                            str(tmp_path / "other.log"), "--json", str(tmp_path / "cmp.json")])
    from_json, from_log = result["comparisons"]
    assert from_json["items"] == from_log["items"] == 5  # paired over what both scored
    assert from_json["color"]["difference"] == pytest.approx(-2 / 5)  # other - base
    assert from_json["pattern"]["difference"] == pytest.approx(2 / 5) and from_json["pattern"]["b_only"] == 0
    assert from_log["color"] == from_json["color"] and from_log["both"] == from_json["both"]
    assert json.loads((tmp_path / "cmp.json").read_text())[0]["items"] == 5
    printed = capsys.readouterr().out
    assert "other.log vs base.json: 5 paired csd items" in printed and "-40.0" in printed
    assert [r["prompt"] for r in fidelity.read_runs(tmp_path / "other.log")][0] == "it's a prompt"
    (tmp_path / "empty.log").write_text("nothing scored here\n")
    for bad in (tmp_path / "empty.log", tmp_path / "missing.json"):
        with pytest.raises(SystemExit) as error:
            fidelity.main(["--compare", str(tmp_path / "base.json"), str(bad)])
        assert str(bad.name) in str(error.value) and "\n" not in str(error.value)


def test_time_limit_writes_the_items_that_finished(fidelity, tmp_path, monkeypatch):
    """A frozen clock that jumps past the limit after the second item: the run stops there and writes a record of
    the two items (items.finished of items.planned) instead of nothing."""
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(fidelity, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    evaluate, calls = fidelity._evaluate, []

    def evaluate_then_jump(job):
        result = evaluate(job)
        calls.append(job)
        if len(calls) == 2:
            clock.now += 1000.0
        return result

    monkeypatch.setattr(fidelity, "_evaluate", evaluate_then_jump)
    out = tmp_path / "results"
    common = ["--methods", "reference", "--prompts", "4", "--meshes", "crate", "--frames", "2", "--grid-views", "1",
              "--device", "cpu", "--out", str(out)]
    record = fidelity.main([*common, "--name", "cut", "--time-limit", "100"])
    assert len(calls) == 2 and record["items"] == {"finished": 2, "planned": 4}
    data = json.loads((out / "cut.json").read_text())
    assert len(data["runs"]) == 2 and (out / "cut_grid.png").is_file()
    ticks = iter(range(1, 1000))  # a clock a second further at every reading: the limit is spent before the first item
    monkeypatch.setattr(fidelity, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    with pytest.raises(SystemExit, match="no item finished"):
        fidelity.main([*common, "--name", "none", "--time-limit", "0.5"])
    assert not (out / "none.json").exists()
    with pytest.raises(SystemExit) as error:
        fidelity.parse_args([*common, "--time-limit", "0"])
    assert error.value.code == 2
