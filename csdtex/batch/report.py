"""The batch report: ``summary.json`` (machine-readable) and ``summary.html`` (for people).

``summary.html`` is self-contained: inline CSS, no script, no network. Thumbnails and file links are relative to
the output folder (``<name>/<stem>_turntable.gif``), so the folder can be moved or served as it is. One row per
asset, failures on top with their one-line error, then the others in manifest order.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from csdtex.batch.manifest import AssetRow
from csdtex.batch.tasks import TaskResult
from csdtex.fileio import write_text_atomic
from csdtex.wording import counted

STATUSES = ("failed", "not run", "done", "skipped")
"""Entry statuses, in the order the HTML report lists them: ``skipped`` = done by an earlier run, same settings."""
_FILE_ORDER = {".glb": 0, ".gltf": 0, ".obj": 1, ".mtl": 2, ".png": 3, ".gif": 4, ".mp4": 4, ".json": 5}
_MARKER = "batch.json"


def asset_entry(row: AssetRow, status: str, out_dir: Path, result: TaskResult | None,
                marker: dict[str, Any] | None) -> dict[str, Any]:
    """One asset's summary record (JSON-ready).

    Args:
        row: the manifest row.
        status: one of :data:`STATUSES`.
        out_dir: the batch's output folder (file links are relative to it).
        result: this run's last attempt (None for skipped / not run assets).
        marker: the asset folder's ``batch.json`` (None when it has none).
    Returns:
        dict with ``name``, ``status``, ``where``, ``task``, ``mesh``, ``prompt``, ``options``, ``seconds``,
        ``attempts``, ``worker``, ``error``, ``exit_code``, ``traceback``, ``warnings``, ``folder``, ``files``
        (paths relative to ``out_dir``), ``thumbnail`` and ``views`` (relative paths or None), and
        ``stale_outputs`` (a failed asset whose folder still holds the outputs of other settings).
    """
    source = result
    entry: dict[str, Any] = {
        "name": row.name, "status": status, "where": row.where, "task": row.task, "mesh": str(row.mesh),
        "prompt": row.prompt, "options": row.options,
        "seconds": round(source.seconds, 2) if source else (marker or {}).get("seconds"),
        "attempts": source.attempt if source else (marker or {}).get("attempts"),
        "worker": source.worker if source else (marker or {}).get("worker"),
        "error": source.error if source and not source.ok else None,
        "exit_code": source.exit_code if source and not source.ok else None,
        "traceback": source.traceback if source else None,
        "warnings": source.warnings if source else (marker or {}).get("warnings", []),
        "folder": None, "files": [], "thumbnail": None, "views": None,
        "stale_outputs": status == "failed" and marker is not None,
    }
    folder = out_dir / row.name
    if status in ("done", "skipped") and folder.is_dir():
        files = sorted((p for p in folder.iterdir() if p.is_file() and p.name != _MARKER),
                       key=lambda p: (_FILE_ORDER.get(p.suffix.lower(), 6), p.name))
        entry["folder"] = row.name
        entry["files"] = [f"{row.name}/{p.name}" for p in files]
        entry["thumbnail"] = next((f"{row.name}/{p.name}" for p in files if p.name.endswith("_turntable.gif")), None)
        entry["views"] = next((f"{row.name}/{p.name}" for p in files if p.name.endswith("_views.png")), None)
        entry["thumbnail"] = entry["thumbnail"] or entry["views"]
    return entry


GENERATOR_TAG = '<meta name="generator" content="csdtex batch">'
"""In the head of every ``summary.html`` a batch writes: how a batch tells its own report from somebody else's."""


def check_summaries_are_ours(out_dir: Path) -> None:
    """Refuse an output folder whose ``summary.json`` / ``summary.html`` a batch did not write (a batch replaces
    its own as it goes). A ``summary.json`` with the batch's keys is ours; a ``summary.html`` with
    :data:`GENERATOR_TAG`, or beside such a ``summary.json`` (reports of earlier versions had no tag), is ours.

    Raises:
        ConfigError: one line naming the file and the remedy.
    """
    from csdtex.errors import ConfigError

    json_path, html_path = out_dir / "summary.json", out_dir / "summary.html"
    json_ours = None
    if json_path.is_file():
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
            json_ours = isinstance(record, dict) and {"counts", "assets"} <= set(record)
        except (OSError, ValueError):
            json_ours = False
    html_ours = None
    if html_path.is_file():
        try:
            head = html_path.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            head = ""
        html_ours = GENERATOR_TAG in head or bool(json_ours)
    for path, ours in ((json_path, json_ours), (html_path, html_ours)):
        if ours is False:
            raise ConfigError(f"{path} was not written by csdtex batch, and a batch writes its report there: move it "
                              "away or choose another --out")


def write_summary(out_dir: Path, entries: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``summary.json`` (``meta`` + ``counts`` + ``assets``) and ``summary.html`` into ``out_dir``
    atomically; returns their paths."""
    counts = {status: sum(entry["status"] == status for entry in entries) for status in STATUSES}
    record = {**meta, "counts": counts, "assets": entries}
    json_path = write_text_atomic(out_dir / "summary.json", json.dumps(record, indent=2, default=str))
    html_path = write_text_atomic(out_dir / "summary.html", render_html(entries, meta, counts))
    return json_path, html_path


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _href(relative: str) -> str:
    return _esc(quote(relative, safe="/"))


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 90:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _flat(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _row_html(entry: dict[str, Any], lazy: bool) -> str:
    status = entry["status"]
    css = status.replace(" ", "-")
    if entry["thumbnail"]:
        target = entry["views"] or entry["thumbnail"]
        loading = ' loading="lazy"' if lazy else ""
        thumb = (f'<a href="{_href(target)}" title="all views"><img class="thumb" src="{_href(entry["thumbnail"])}" '
                 f'alt="turntable of {_esc(entry["name"])}" width="112" height="112"{loading}></a>')
    else:
        mark = {"failed": "✕", "not run": "…"}.get(status, "–")
        thumb = f'<div class="thumb placeholder {css}">{mark}</div>'
    details = [f'<div class="prompt">{_esc(entry["prompt"])}</div>']
    if entry.get("options"):
        chips = "".join(f'<span class="chip">{_esc(key)} {_esc(_short(value))}</span>'
                        for key, value in _flat(entry["options"]).items())
        details.append(f'<div class="chips">{chips}</div>')
    if entry["error"]:
        details.append(f'<div class="error">{_esc(entry["error"])}</div>')
    if entry.get("stale_outputs"):
        details.append(f'<div class="note">{_esc(entry["name"])}/ still holds the outputs of earlier settings</div>')
    if entry.get("traceback"):
        details.append(f'<details><summary>traceback</summary><pre>{_esc(entry["traceback"])}</pre></details>')
    for warning in entry.get("warnings") or []:
        details.append(f'<div class="warning">warning: {_esc(warning)}</div>')
    links = "".join(f'<a href="{_href(path)}">{_esc(path.split("/", 1)[1])}</a>' for path in entry["files"])
    attempts = entry.get("attempts")
    tries = f'<div class="sub">{attempts} attempts</div>' if attempts and attempts > 1 else ""
    return (
        f'<tr class="{css}"><td class="thumbcell">{thumb}</td>'
        f'<td class="assetcell"><div class="name">{_esc(entry["name"])}</div><div class="sub">{_esc(entry["where"])}</div>'
        f'<div class="sub">{_esc(entry["mesh"])}</div></td>'
        f'<td><span class="pill {css}">{_esc(status)}</span>{tries}</td>'
        f'<td class="num">{_seconds(entry["seconds"])}</td>'
        f'<td class="detail">{"".join(details)}</td>'
        f'<td class="files">{links}</td></tr>'
    )


def render_html(entries: list[dict[str, Any]], meta: dict[str, Any], counts: dict[str, int]) -> str:
    """The self-contained HTML report (see the module docstring)."""
    order = {status: i for i, status in enumerate(STATUSES)}
    rows = sorted(entries, key=lambda e: order[e["status"]] if e["status"] in ("failed", "not run") else len(order))
    lazy = len(entries) > 100
    stats = "".join(
        f'<div class="stat {status.replace(" ", "-")}"><b>{counts[status]}</b>{status}</div>'
        for status in ("done", "skipped", "failed", "not run") if counts[status] or status in ("done", "failed"))
    body = "\n".join(_row_html(entry, lazy) for entry in rows)
    generated = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="csdtex batch">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>csdtex batch: {counted(len(entries), "asset")}</title>
<style>{_CSS}</style></head>
<body>
<header>
<h1>csdtex batch <span class="count">{counted(len(entries), "asset")}</span></h1>
<div class="meta">{_esc(meta.get("manifest"))} &rarr; {_esc(meta.get("out_dir"))}<br>started
{_esc(str(meta.get("started_at", ""))[:16].replace("T", " "))} &middot; {_seconds(meta.get("wall_seconds"))} wall
&middot; report written {generated} &middot; csdtex {_esc(meta.get("csdtex"))}</div>
<div class="stats">{stats}</div>
</header>
<main>
<table>
<thead><tr><th>preview</th><th>asset</th><th>status</th><th class="num">time</th><th>prompt</th><th>files</th></tr></thead>
<tbody>
{body}
</tbody></table>
<p class="foot">Failed assets first, then the others in manifest order. Click a preview for all views.
Details and tracebacks: <a href="summary.json">summary.json</a>.</p>
</main>
</body></html>
"""


_CSS = """
:root { --bg: #f5f6f8; --card: #fff; --text: #1b2130; --muted: #687083; --line: #e3e6ec; --link: #1858c9;
  --ok: #127a55; --okbg: #e4f5ec; --bad: #b42318; --badbg: #fdeceb; --skip: #475467; --skipbg: #eceff3;
  --warn: #935f00; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { padding: 28px 32px 6px; }
h1 { font-size: 22px; margin: 0 0 6px; letter-spacing: -0.01em; }
h1 .count { color: var(--muted); font-weight: 400; font-size: 16px; margin-left: 6px; }
.meta { color: var(--muted); font-size: 12.5px; word-break: break-all; }
.stats { display: flex; gap: 12px; margin: 18px 0 6px; flex-wrap: wrap; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 8px 18px 10px;
  min-width: 104px; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.stat b { display: block; font-size: 24px; color: var(--text); letter-spacing: 0; }
.stat.failed b { color: var(--bad); } .stat.done b { color: var(--ok); }
main { padding: 10px 32px 32px; }
table { width: 100%; border-collapse: separate; border-spacing: 0; background: var(--card);
  border: 1px solid var(--line); border-radius: 12px; overflow: hidden; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11.5px; text-transform: uppercase;
  letter-spacing: .05em; padding: 10px 14px; background: #fafbfc; border-bottom: 1px solid var(--line); }
td { padding: 12px 14px; border-bottom: 1px solid var(--line); vertical-align: top; }
tbody tr:last-child td { border-bottom: 0; }
tr.failed td { background: #fffafa; }
tr.failed td:first-child { box-shadow: inset 4px 0 0 var(--bad); }
tr.not-run td:first-child { box-shadow: inset 4px 0 0 #98a2b3; }
.thumbcell { width: 140px; }
.thumb { width: 112px; height: 112px; border-radius: 8px; display: block; object-fit: contain;
  background: #eef0f3; border: 1px solid var(--line); }
.placeholder { display: flex; align-items: center; justify-content: center; font-size: 30px; color: #98a2b3; }
.placeholder.failed { color: var(--bad); background: var(--badbg); border-color: #f6d0cd; }
.assetcell { min-width: 190px; max-width: 280px; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.chips { margin-top: 6px; }
.chip { display: inline-block; font-size: 11.5px; color: var(--muted); background: var(--skipbg); border-radius: 5px;
  padding: 1px 7px; margin: 0 4px 4px 0; font-variant-numeric: tabular-nums; }
.sub { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; margin-top: 2px; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
  white-space: nowrap; }
.pill.done { color: var(--ok); background: var(--okbg); }
.pill.skipped { color: var(--skip); background: var(--skipbg); }
.pill.failed { color: var(--bad); background: var(--badbg); }
.pill.not-run { color: var(--skip); background: var(--skipbg); }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.detail { max-width: 560px; }
.prompt { font-size: 14px; }
.error { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--bad);
  background: var(--badbg); border-radius: 6px; padding: 7px 9px; margin-top: 8px; white-space: pre-wrap;
  word-break: break-word; }
.warning { color: var(--warn); font-size: 12px; margin-top: 6px; }
.note { color: var(--muted); font-size: 12px; margin-top: 6px; }
details { margin-top: 6px; font-size: 12px; } pre { white-space: pre-wrap; font-size: 11.5px; }
.files { max-width: 300px; }
.files a { display: inline-block; margin: 0 6px 6px 0; padding: 2px 8px; border: 1px solid var(--line);
  border-radius: 6px; text-decoration: none; color: var(--link); font-size: 12px; background: #fbfcfe; }
.files a:hover { border-color: var(--link); }
a { color: var(--link); }
.foot { color: var(--muted); font-size: 12px; margin-top: 14px; }
"""
