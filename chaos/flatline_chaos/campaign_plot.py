"""Draw timeline.png of one fault campaign (`flatline chaos campaign`).

Reads the campaign's folder: schedule.json (the faults, planned) and
timeline.jsonl (the faults as they went on and off, the samples, the
violations). Three panels share the time axis: the fault bands (one lane per
fault kind, each band labelled with the fault's number), the worst age of the
flats no fault excused, as query sees it and as ingestion's outboxes record
their last fetch (with the max-age line; grey where query excused every
flat), and each ingestion replica's outbox. Violations are red lines
through every panel. The verdict is the campaign's (verdict.json), not this
script's: it only draws.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

KINDS = ["http", "grpc", "tcp", "kill", "stop", "node", "db"]
COLOURS = {
    "http": "#4e79a7",
    "grpc": "#59a14f",
    "tcp": "#9c755f",
    "kill": "#e15759",
    "stop": "#f28e2b",
    "node": "#b07aa1",
    "db": "#76b7b2",
}


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of path; a torn last line (a crash mid-write) is skipped."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def bands(schedule: dict[str, Any], timeline: list[dict[str, Any]]) -> list[tuple[int, str, float, float]]:
    """(id, kind, start s, end s) of each fault: its real on and off, else its planned ones."""
    on: dict[int, float] = {}
    off: dict[int, float] = {}
    for e in timeline:
        if e.get("type") != "fault":
            continue
        if e.get("phase") == "on":
            on[e["id"]] = e["tMs"] / 1000
        elif e.get("phase") == "off":
            off[e["id"]] = e["tMs"] / 1000
    out = []
    for f in schedule.get("faults", []):
        if f["id"] not in on:
            continue
        out.append((f["id"], f["kind"], on[f["id"]], off.get(f["id"], f["healMs"] / 1000)))
    return out


def nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def draw(folder: Path, max_age: float) -> Path:
    from matplotlib.figure import Figure

    schedule = json.loads((folder / "schedule.json").read_text(encoding="utf-8"))
    timeline = read_lines(folder / "timeline.jsonl")
    figure = Figure(figsize=(12, 8), dpi=100)
    top, middle, bottom = figure.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 1, 1]})

    for fid, kind, start, end in bands(schedule, timeline):
        lane = KINDS.index(kind) if kind in KINDS else len(KINDS)
        top.broken_barh([(start, max(end - start, 0.5))], (lane - 0.4, 0.8), facecolors=COLOURS.get(kind, "grey"), alpha=0.8)
        top.text(start, lane, f"{fid}", va="center", ha="left", fontsize=7, color="black")
    top.set_yticks(range(len(KINDS)), KINDS)
    top.set_ylim(-0.7, len(KINDS) - 0.3)
    top.set_title(f"fault campaign, seed {schedule.get('seed')}: {len(schedule.get('faults', []))} faults, at most {schedule.get('maxConcurrent')} at once")

    fresh = [e for e in timeline if e.get("type") == "freshness"]
    # Every flat excused: no point (NaN breaks the line there, as does a missing answer).
    xs = [e["tMs"] / 1000 for e in fresh]
    ys = [math.nan if e.get("excused") == "all" else nan(e.get("worst")) for e in fresh]
    middle.plot(xs, ys, ".-", markersize=2, linewidth=1, label="query: worst age of the flats no fault touches")
    fetched = [e for e in timeline if e.get("type") == "fetched"]
    middle.plot(
        [e["tMs"] / 1000 for e in fetched],
        [math.nan if e.get("excused") == "all" else nan(e.get("worst")) for e in fetched],
        ".-", markersize=2, linewidth=1, color="tab:green",
        label="ingestion: worst age of the last fetch of the flats no fault cuts off",
    )
    for e in fresh:
        if e.get("excused") == "all":
            middle.axvspan(e["tMs"] / 1000 - 0.5, e["tMs"] / 1000 + 0.5, color="grey", alpha=0.15, linewidth=0)
    middle.axhline(max_age, color="red", linestyle="--", linewidth=1, label=f"max age {max_age:g} s")
    middle.set_ylabel("age (s)")
    middle.legend(loc="upper right", fontsize=7)

    health = [e for e in timeline if e.get("type") == "health"]
    replicas = sorted({name for e in health for name in (e.get("outbox") or {})})
    for name in replicas:
        bottom.plot([e["tMs"] / 1000 for e in health], [nan((e.get("outbox") or {}).get(name)) for e in health], ".-", markersize=2, linewidth=1, label=name)
    bottom.set_ylabel("outbox (fetches)")
    bottom.set_xlabel("seconds since the campaign started")
    if replicas:
        bottom.legend(loc="upper right", fontsize=7)

    for v in (e for e in timeline if e.get("type") == "violation"):
        for axes in (top, middle, bottom):
            axes.axvline(v["tMs"] / 1000, color="red", linewidth=1.2, alpha=0.7)
    figure.tight_layout()
    out = folder / "timeline.png"
    figure.savefig(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="the campaign's report folder")
    parser.add_argument("--max-age", type=float, default=20.0, help="the max-age line, in seconds")
    args = parser.parse_args(argv)
    if not (args.dir / "schedule.json").exists():
        print(f"campaign_plot: no schedule.json in {args.dir}", file=sys.stderr)
        return 2
    print(f"[chaos] campaign: plot: {draw(args.dir, args.max_age)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
