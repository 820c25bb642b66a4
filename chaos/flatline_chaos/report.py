"""Write the readable report of one chaos run: report.md, freshness.png, verdict.json.

`flatline chaos run` calls this after Chaos Toolkit has written its journal, with
the freshness timeline and the fault events recorded during the run. The verdict
is computed here, from every steady-state entry of the journal, because Chaos
Toolkit 1.19 reports status "completed" for runs whose steady state was never met.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

# Events this close outside the journal's start..end still belong to the run:
# the actions write them while Chaos Toolkit timestamps its own steps.
EVENT_SLACK = timedelta(seconds=5)
OUTPUT_CHARS = 160
# Why a status other than "completed" means the run proved nothing.
STATUS_MEANING = {
    "interrupted": "the run was interrupted (a signal, or a control or probe asked it to stop)",
    "aborted": "the run was aborted (Chaos Toolkit hit an unexpected error)",
    "failed": "Chaos Toolkit reported the run failed",
}


class JournalError(Exception):
    """The journal cannot be read; the caller exits 2 rather than write a lie."""


@dataclass(frozen=True)
class Sample:
    """One line of timeline.jsonl: freshness as the query service saw it."""

    t: datetime
    worst: Optional[float]
    p99: Optional[float]
    query_ok: bool


@dataclass(frozen=True)
class Timeline:
    """The samples, and whether a timeline file was there at all."""

    samples: list[Sample]
    recorded: bool
    skipped_lines: int = 0


@dataclass(frozen=True)
class Event:
    """One line of events.jsonl: a fault injected or removed by a flatline action."""

    t: datetime
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class FaultWindow:
    """An inject and the remove that undid it (None: it was never undone)."""

    target: str
    detail: str
    start: datetime
    end: Optional[datetime]


@dataclass(frozen=True)
class ProbeRun:
    """One probe execution from the journal, flattened for tables and marks."""

    when: str
    name: str
    tolerance: Any
    value: str
    status: str
    met: Optional[bool]
    start: Optional[datetime]


@dataclass(frozen=True)
class Check:
    """One evaluation of the steady-state hypothesis (before, during #n, after)."""

    when: str
    met: bool
    probes: list[ProbeRun]


@dataclass(frozen=True)
class Verdict:
    """The outcome and every reason behind it, in the order a reader needs them."""

    verdict: str
    reasons: list[str]
    failures: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """One line for verdict.json and the report's verdict line."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Run:
    """Everything the report is made of, gathered once and passed around."""

    title: str
    journal: dict[str, Any]
    start: datetime
    end: datetime
    checks: list[Check]
    method: list[ProbeRun]
    windows: list[FaultWindow]
    timeline: Timeline
    max_age: float
    verdict: Verdict

    def seconds(self, t: datetime) -> float:
        """Seconds since the run started: the x axis of the plot and the tables."""
        return (t - self.start).total_seconds()


# --- reading -----------------------------------------------------------------


def parse_time(text: Any) -> Optional[datetime]:
    """Parse an ISO time from any of the writers; naive times are taken as UTC."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def load_journal(path: Path) -> dict[str, Any]:
    """Read the journal, refusing what is not one so no report is built on it."""
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise JournalError(f"cannot read the journal {path}: {error.strerror}") from error
    except ValueError as error:
        raise JournalError(f"the journal {path} is not JSON: {error}") from error
    if not isinstance(journal, dict) or not isinstance(journal.get("experiment"), dict):
        raise JournalError(f"{path} is not a Chaos Toolkit journal (no experiment)")
    if parse_time(journal.get("start")) is None:
        raise JournalError(f"the journal {path} has no valid start time")
    return journal


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int, bool]:
    """Read a JSON-lines file written while a run was killed: torn lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [], 0, False
    rows, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped, True


def number(value: Any) -> Optional[float]:
    """A finite float, or None: the sampler writes null when it has no answer."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def load_timeline(path: Path) -> Timeline:
    """Read the freshness samples, sorted by time."""
    rows, skipped, recorded = read_jsonl(path)
    samples = []
    for row in rows:
        t = parse_time(row.get("t"))
        if t is None:
            skipped += 1
            continue
        worst = number(row.get("worst_healthy_age_s"))
        query_ok = row.get("query_ok")
        if not isinstance(query_ok, bool):
            query_ok = worst is not None
        samples.append(Sample(t, worst, number(row.get("p99_healthy_age_s")), query_ok))
    samples.sort(key=lambda s: s.t)
    return Timeline(samples, recorded and bool(rows or skipped), skipped)


def load_events(path: Path, start: datetime, end: datetime) -> list[Event]:
    """Read the fault events of this run only: the file may hold earlier runs' too."""
    rows, _, _ = read_jsonl(path)
    events = []
    for row in rows:
        t = parse_time(row.get("t"))
        action = row.get("action")
        if t is None or action not in ("inject", "remove"):
            continue
        if not start - EVENT_SLACK <= t <= end + EVENT_SLACK:
            continue
        events.append(Event(t, action, str(row.get("target") or "?"), str(row.get("detail") or "")))
    events.sort(key=lambda e: e.t)
    return events


# --- interpreting --------------------------------------------------------------


def fault_windows(events: Iterable[Event]) -> list[FaultWindow]:
    """Pair each inject with the next remove of its target or of "*"."""
    open_injects: list[Event] = []
    windows: list[FaultWindow] = []
    for event in events:
        if event.action == "inject":
            open_injects.append(event)
            continue
        closed = [e for e in open_injects if event.target in ("*", e.target)]
        windows += [FaultWindow(e.target, e.detail, e.t, event.t) for e in closed]
        open_injects = [e for e in open_injects if e not in closed]
    windows += [FaultWindow(e.target, e.detail, e.t, None) for e in open_injects]
    return sorted(windows, key=lambda w: w.start)


def trim(text: str, limit: int = OUTPUT_CHARS) -> str:
    """Keep table cells readable: one line, bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_output(run: dict[str, Any]) -> str:
    """What a probe returned, the way a reader checks it against the tolerance."""
    if run.get("status") == "failed" and run.get("exception"):
        lines = [str(line).strip() for line in run["exception"] if str(line).strip()]
        return trim("error: " + (lines[-1] if lines else "unknown"))
    output = run.get("output")
    if isinstance(output, dict) and "status" in output and "stdout" in output:
        text = f"exit {output.get('status')}"
        for stream in ("stdout", "stderr"):
            if str(output.get(stream) or "").strip():
                text += f"; {stream}: {output[stream]}"
        return trim(text)
    if output is None:
        return "(no output)"
    return trim(json.dumps(output, sort_keys=True) if not isinstance(output, str) else output)


def probe_run(when: str, run: dict[str, Any], met: Optional[bool]) -> ProbeRun:
    """Flatten one journal activity run."""
    activity = run.get("activity") or {}
    return ProbeRun(
        when=when,
        name=str(activity.get("name") or "?"),
        tolerance=activity.get("tolerance"),
        value=describe_output(run),
        status=str(run.get("status") or "not finished"),
        met=met,
        start=parse_time(run.get("start")),
    )


def steady_state_entries(journal: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every hypothesis evaluation, labelled; a missing "before" stays visible as None."""
    states = journal.get("steady_states") or {}
    entries: list[tuple[str, Any]] = [("before", states.get("before"))]
    entries += [(f"during #{n}", e) for n, e in enumerate(states.get("during") or [], 1)]
    if states.get("after") is not None:
        entries.append(("after", states["after"]))
    return entries


def checks_from(journal: dict[str, Any]) -> list[Check]:
    """Turn the journal's steady-state entries into checks; a probe that crashed is unmet."""
    checks = []
    for when, entry in steady_state_entries(journal):
        if not isinstance(entry, dict):
            continue
        probes = [
            probe_run(when, run, run.get("tolerance_met") is True)
            for run in entry.get("probes") or []
        ]
        met = entry.get("steady_state_met") is True and all(p.met for p in probes)
        checks.append(Check(when, met, probes))
    return checks


def tolerance_met(activity: dict[str, Any], run: dict[str, Any]) -> Optional[bool]:
    """Judge a method probe with Chaos Toolkit's own rules, which the method never applies.

    chaoslib records a method probe as "succeeded" whatever its tolerance says,
    so a probe proving the fault acted would otherwise pass even when it did not.
    """
    status = run.get("status")
    if status != "succeeded":
        return False if status == "failed" else None
    if "tolerance" not in activity:
        return None
    try:
        from chaoslib.hypothesis import within_tolerance
    except ImportError:
        return None
    try:
        return bool(within_tolerance(activity["tolerance"], run.get("output")))
    except Exception:  # a tolerance chaoslib cannot evaluate says nothing either way
        return None


def method_probes(journal: dict[str, Any]) -> list[ProbeRun]:
    """The method's probes: the evidence that the fault really acted."""
    runs = []
    for run in journal.get("run") or []:
        activity = run.get("activity") or {}
        if activity.get("type") == "probe":
            runs.append(probe_run("method", run, tolerance_met(activity, run)))
    return runs


def failed_activities(runs: Sequence[dict[str, Any]], where: str) -> list[str]:
    """Name method actions or rollbacks that failed: the fault may be half applied."""
    reasons = []
    for run in runs:
        if run.get("status") == "failed":
            name = (run.get("activity") or {}).get("name", "?")
            reasons.append(f"{where} '{name}' failed ({describe_output(run)})")
    return reasons


def unmet_reason(check: Check) -> str:
    """Say which probe broke the steady state and with what value."""
    broken = [p for p in check.probes if not p.met]
    if not broken:
        return f"steady state not met {check.when}"
    probe = broken[0]
    return f"probe '{probe.name}' not met {check.when} ({probe.value})"


def precondition_failures(checks: Sequence[Check]) -> list[str]:
    """A hypothesis not met before the method means the fault was never tested."""
    before = [c for c in checks if c.when == "before"]
    if not before:
        return ["no steady-state check ran before the method"]
    if not before[0].met:
        return [unmet_reason(before[0]) + ": the system was not in its steady state, nothing was tested"]
    return []


def judge(journal: dict[str, Any], checks: Sequence[Check], method: Sequence[ProbeRun],
          windows: Sequence[FaultWindow]) -> Verdict:
    """Passed only when Chaos Toolkit completed, every check held and every fault was removed.

    A failed check during or after the fault is a deviation (the finding the
    experiment exists for); anything that makes the run itself untrustworthy
    (no steady state to start from, an interrupted or aborted run, a fault left
    in place, an action or rollback that failed, a fault that did not take
    effect) is a failure and wins over a deviation.
    """
    status = str(journal.get("status") or "unknown")
    deviations = [unmet_reason(c) for c in checks if c.when != "before" and not c.met]
    if journal.get("deviated") is True and not deviations:
        deviations.append("Chaos Toolkit marked the run deviated")
    failures = precondition_failures(checks)
    # chaoslib's --fail-fast sets "failed" when a check during the method fails:
    # that is the deviation already named, not a second problem.
    if status != "completed" and not (status == "failed" and deviations):
        failures.append(STATUS_MEANING.get(status, f"Chaos Toolkit status '{status}'"))
    failures += failed_activities(journal.get("run") or [], "method activity")
    failures += [f"the fault's evidence '{p.name}' was out of tolerance ({p.value})"
                 for p in method if p.met is False and p.status == "succeeded"]
    failures += failed_activities(journal.get("rollbacks") or [], "rollback")
    failures += [f"fault on {w.target} NOT REMOVED" for w in windows if w.end is None]
    if failures:
        return Verdict("failed", failures + deviations, failures, deviations)
    if deviations:
        return Verdict("deviated", deviations, failures, deviations)
    counts = ", ".join(f"{n} {label}" for label, n in check_counts(checks) if n)
    return Verdict("passed", [f"every steady-state check met ({counts}), every fault removed"])


def check_counts(checks: Sequence[Check]) -> list[tuple[str, int]]:
    """How many checks ran in each phase, for the passed reason."""
    phases = [c.when.split(" ")[0] for c in checks]
    return [(p, phases.count(p)) for p in ("before", "during", "after")]


def build_run(journal: dict[str, Any], timeline: Timeline, events_path: Path,
              max_age: float, title: Optional[str]) -> Run:
    """Gather and judge everything once, so report.md, the plot and verdict.json agree."""
    start = parse_time(journal.get("start"))
    assert start is not None  # load_journal refused journals without one
    end = parse_time(journal.get("end")) or (timeline.samples[-1].t if timeline.samples else start)
    checks = checks_from(journal)
    method = method_probes(journal)
    windows = fault_windows(load_events(events_path, start, end))
    verdict = judge(journal, checks, method, windows)
    name = title or str(journal["experiment"].get("title") or "chaos experiment")
    return Run(name, journal, start, end, checks, method, windows, timeline, max_age, verdict)


# --- freshness figures ---------------------------------------------------------


def window_end(run: Run, window: FaultWindow) -> datetime:
    """Where a fault stopped acting: an unremoved one lasts to the end of the run."""
    return window.end or max(run.end, window.start)


def during_faults(run: Run, sample: Sample) -> bool:
    """Whether a sample was taken while some fault was in place."""
    return any(w.start <= sample.t <= window_end(run, w) for w in run.windows)


def worst(values: Iterable[Optional[float]]) -> Optional[float]:
    """The largest known value, None when nothing was known."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def freshness_summary(run: Run) -> dict[str, Any]:
    """The numbers behind the freshness paragraph and verdict.json."""
    samples = run.timeline.samples
    inside = [during_faults(run, s) for s in samples]
    faulted = [s for s, flag in zip(samples, inside) if flag]
    return {
        "samples": len(samples),
        "worst": worst(s.worst for s in samples),
        "worst_during_faults": worst(s.worst for s in faulted),
        "worst_outside_faults": worst(s.worst for s, flag in zip(samples, inside) if not flag),
        "samples_during_faults": len(faulted),
        "over_limit": sum(1 for s in samples if s.worst is not None and s.worst >= run.max_age),
        "unanswered": sum(1 for s in samples if not s.query_ok),
        "unanswered_during_faults": sum(1 for s in faulted if not s.query_ok),
    }


# --- plot ----------------------------------------------------------------------


def plot_freshness(run: Run, path: Path) -> None:
    """Draw freshness.png with the object API only, so no pyplot state leaks between runs."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    figure = Figure(figsize=(11, 4.8), dpi=100)
    axes = figure.add_subplot()
    strip = blended_transform_factory(axes.transData, axes.transAxes)
    draw_windows(run, axes, strip)
    draw_samples(run, axes, strip)
    draw_checks(run, axes, strip)
    axes.axhline(run.max_age, color="tab:red", linestyle="--", linewidth=1,
                 label=f"steady-state limit ({run.max_age:g} s)")
    top = max([run.max_age] + [s.worst or 0 for s in run.timeline.samples]
              + [s.p99 or 0 for s in run.timeline.samples])
    axes.set_ylim(0, top * 1.25 + 1)
    axes.set_xlim(*x_extent(run))
    axes.set_xlabel(f"seconds since the run started ({run.start:%Y-%m-%d %H:%M:%S} UTC)")
    axes.set_ylabel("age of the last successful fetch (s)")
    axes.set_title(f"{run.title}: {run.verdict.verdict.upper()}", fontsize=11)
    axes.grid(True, alpha=0.3)
    # Outside the axes: inside it would hide the fault labels or the checks.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})


def x_extent(run: Run) -> tuple[float, float]:
    """The x range that shows the whole run and every mark, even those just outside it."""
    xs = [0.0, run.seconds(run.end)]
    xs += [run.seconds(s.t) for s in run.timeline.samples]
    xs += [run.seconds(t) for w in run.windows for t in (w.start, window_end(run, w))]
    xs += [run.seconds(p.start) for c in run.checks for p in c.probes if p.start is not None]
    margin = max(1.0, (max(xs) - min(xs)) * 0.02)
    return min(xs) - margin, max(xs) + margin


def draw_windows(run: Run, axes: Any, strip: Any) -> None:
    """Shade each fault window and name its target; an unremoved fault is shouted."""
    for window in run.windows:
        left, right = run.seconds(window.start), run.seconds(window_end(run, window))
        removed = window.end is not None
        axes.axvspan(left, right, color="tab:orange" if removed else "tab:red", alpha=0.15, linewidth=0)
        label = window.target if removed else f"{window.target} NOT REMOVED"
        axes.text(left, 0.97, f" {label}", transform=strip, va="top", ha="left", fontsize=8,
                  color="black" if removed else "tab:red", fontweight="normal" if removed else "bold")


def draw_samples(run: Run, axes: Any, strip: Any) -> None:
    """The worst healthy flat's age, its p99, and marks where the query did not answer."""
    samples = run.timeline.samples
    if not samples:
        axes.text(0.5, 0.5, "no timeline was recorded", transform=axes.transAxes,
                  ha="center", va="center", color="grey", fontsize=12)
        return
    xs = [run.seconds(s.t) for s in samples]
    axes.plot(xs, [nan_if_none(s.worst) for s in samples], color="tab:blue", linewidth=1.5,
              marker=".", markersize=3, label="worst healthy flat")
    if any(s.p99 is not None for s in samples):
        axes.plot(xs, [nan_if_none(s.p99) for s in samples], color="tab:cyan", linewidth=0.8,
                  alpha=0.8, label="p99 healthy flats")
    missed = [x for x, s in zip(xs, samples) if not s.query_ok]
    if missed:
        axes.plot(missed, [0.02] * len(missed), linestyle="none", marker="x", color="tab:red",
                  transform=strip, label=f"query unanswered ({len(missed)})", clip_on=False)


def nan_if_none(value: Optional[float]) -> float:
    """matplotlib breaks the line at NaN, which is what a missing answer should look like."""
    return math.nan if value is None else value


def draw_checks(run: Run, axes: Any, strip: Any) -> None:
    """Mark each steady-state probe run near the top: green tick met, red x not met."""
    for met, marker, colour, label in ((True, "|", "tab:green", "check met"),
                                       (False, "x", "tab:red", "check NOT met")):
        xs = [run.seconds(p.start) for c in run.checks for p in c.probes
              if p.start is not None and bool(p.met) == met]
        if xs:
            axes.plot(xs, [0.90] * len(xs), linestyle="none", marker=marker, markersize=8,
                      color=colour, transform=strip, label=label)


# --- markdown ------------------------------------------------------------------


def cell(value: Any) -> str:
    """Escape a value for a Markdown table cell."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return trim(text).replace("|", "\\|") or " "


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def clock(t: Optional[datetime]) -> str:
    """Wall-clock time in UTC, to the millisecond, as the logs write it."""
    return "—" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def seconds_text(value: Optional[float]) -> str:
    """A duration or an age for prose."""
    return "—" if value is None else f"{value:.1f} s"


def run_duration(run: Run) -> float:
    """The journal's own duration when present, else end - start."""
    return number(run.journal.get("duration")) or (run.end - run.start).total_seconds()


def md_header(run: Run) -> list[str]:
    """Title, verdict and when."""
    verdict = run.verdict
    word = verdict.verdict.upper()
    if verdict.verdict == "failed" and run.journal.get("status") != "completed":
        word += f" ({run.journal.get('status', 'unknown')})"
    return [
        f"# {run.title}", "",
        f"**Verdict: {word}** — {verdict.reason}", "",
        f"- Chaos Toolkit status: `{run.journal.get('status')}`, deviated: `{run.journal.get('deviated')}`",
        f"- Started: {clock(run.start)}",
        f"- Ended: {clock(run.end)}",
        f"- Duration: {seconds_text(run_duration(run))}", "",
    ]


def md_configuration(run: Run) -> list[str]:
    """The configuration as resolved by the journal if it carries it, else as declared."""
    resolved = run.journal.get("configuration")
    config = resolved if isinstance(resolved, dict) else run.journal["experiment"].get("configuration")
    lines = ["## Configuration", ""]
    if not config:
        return lines + ["The experiment declares no configuration.", ""]
    if not isinstance(resolved, dict):
        lines += ["As declared (the journal does not record resolved values or `--var` overrides).", ""]
    return lines + table(["key", "value"], [(k, declared(v)) for k, v in sorted(config.items())]) + [""]


def declared(value: Any) -> str:
    """Render a configuration entry; an env entry shows its variable and default."""
    if isinstance(value, dict) and value.get("type") == "env":
        text = f"${value.get('key')}"
        return text + (f" (default {value['default']})" if "default" in value else "")
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def md_faults(run: Run) -> list[str]:
    """What was injected and when; an unremoved fault is impossible to miss."""
    lines = ["## Faults injected", ""]
    if not run.windows:
        return lines + ["No fault was recorded as injected during this run (events.jsonl empty or absent).", ""]
    rows = []
    for w in run.windows:
        removed = clock(w.end) if w.end else "**NOT REMOVED**"
        length = seconds_text((window_end(run, w) - w.start).total_seconds())
        rows.append((w.target, w.detail, f"{clock(w.start)} ({run.seconds(w.start):+.1f} s)",
                     removed, length if w.end else f"≥ {length} (to the end of the run)"))
    lines += table(["target", "detail", "injected at", "removed at", "duration"], rows)
    lost = [w.target for w in run.windows if w.end is None]
    if lost:
        lines += ["", f"**NOT REMOVED: {', '.join(lost)}** — the fault was still in place when the run ended."]
    return lines + [""]


def met_text(met: Optional[bool]) -> str:
    """Met / NOT met / unknown, shouted when it matters."""
    return {True: "yes", False: "**NO**", None: "not judged"}[met]


def md_method(run: Run) -> list[str]:
    """The method's probes: the evidence that the fault took effect."""
    lines = ["## Evidence that the fault took effect", ""]
    if not run.method:
        return lines + ["The method ran no probe.", ""]
    rows = [(p.name, p.status, p.tolerance, p.value, met_text(p.met)) for p in run.method]
    return lines + table(["probe", "status", "tolerance", "output", "within tolerance"], rows) + [""]


def md_checks(run: Run) -> list[str]:
    """Every steady-state probe run, in order."""
    lines = ["## Steady-state checks", ""]
    rows = [(c.when, "—" if p.start is None else f"{run.seconds(p.start):+.1f} s", p.name,
             p.tolerance, p.value, met_text(p.met)) for c in run.checks for p in c.probes]
    if not rows:
        return lines + ["**No steady-state check was recorded.**", ""]
    failed = sum(1 for c in run.checks if not c.met)
    lines += [f"{len(run.checks)} checks, {failed} not met.", ""]
    return lines + table(["when", "at", "probe", "tolerance", "value", "met"], rows) + [""]


def md_rollbacks(run: Run) -> list[str]:
    """The rollbacks and whether they worked."""
    rollbacks = run.journal.get("rollbacks") or []
    lines = ["## Rollbacks", ""]
    if not rollbacks:
        return lines + ["No rollback ran.", ""]
    rows = [((r.get("activity") or {}).get("name", "?"), r.get("status", "not finished"), describe_output(r))
            for r in rollbacks]
    return lines + table(["rollback", "status", "output"], rows) + [""]


def md_freshness(run: Run, summary: dict[str, Any]) -> list[str]:
    """The freshness numbers and the plot."""
    lines = ["## Freshness of the healthy flats", ""]
    if not run.timeline.recorded:
        lines += ["**No timeline was recorded** for this run.", ""]
    else:
        lines += [
            f"- Worst healthy age: {seconds_text(summary['worst'])} overall, "
            f"{seconds_text(summary['worst_during_faults'])} during faults, "
            f"{seconds_text(summary['worst_outside_faults'])} outside them "
            f"(steady-state limit {run.max_age:g} s)",
            f"- Samples: {summary['samples']} ({summary['samples_during_faults']} during faults), "
            f"{summary['over_limit']} at or over the limit",
            f"- Query service unanswered: {summary['unanswered']} of {summary['samples']} samples "
            f"({summary['unanswered_during_faults']} during faults)",
        ]
        if run.timeline.skipped_lines:
            lines.append(f"- Unreadable timeline lines skipped: {run.timeline.skipped_lines}")
        lines.append("")
    return lines + ["![freshness timeline](freshness.png)", ""]


def render_markdown(run: Run, summary: dict[str, Any]) -> str:
    """report.md, section by section."""
    sections = [md_header(run), md_configuration(run), md_faults(run), md_method(run),
                md_checks(run), md_rollbacks(run), md_freshness(run, summary)]
    return "\n".join(line for section in sections for line in section)


# --- output --------------------------------------------------------------------


def verdict_document(run: Run, summary: dict[str, Any]) -> dict[str, Any]:
    """verdict.json: what `flatline chaos run` and CI read instead of parsing Markdown."""
    return {
        "verdict": run.verdict.verdict,
        "status": run.journal.get("status"),
        "deviated": run.journal.get("deviated") is True or bool(run.verdict.deviations),
        "steady_state_checks": len(run.checks),
        "steady_state_failures": sum(1 for c in run.checks if not c.met),
        "reason": run.verdict.reason,
        "faults_not_removed": [w.target for w in run.windows if w.end is None],
        "worst_healthy_age_s": summary["worst"],
        "unanswered": summary["unanswered"],
        "duration_s": round(run_duration(run), 3),
    }


def write_report(run: Run, out: Path) -> dict[str, Any]:
    """Write the three files; returns the verdict document."""
    out.mkdir(parents=True, exist_ok=True)
    summary = freshness_summary(run)
    document = verdict_document(run, summary)
    (out / "verdict.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(run, summary), encoding="utf-8")
    plot_freshness(run, out / "freshness.png")
    return document


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line; argparse exits 2 on bad arguments, as the caller expects."""
    parser = argparse.ArgumentParser(
        prog="report.py",
        description="Write report.md, freshness.png and verdict.json for one Chaos Toolkit run. "
                    "Exits 0 when the report was written, whatever the verdict; 2 on bad arguments "
                    "or an unreadable journal; 1 when the report folder cannot be written.")
    parser.add_argument("--journal", required=True, type=Path, help="the Chaos Toolkit journal (journal.json)")
    parser.add_argument("--timeline", required=True, type=Path,
                        help="timeline.jsonl of freshness samples (may be absent)")
    parser.add_argument("--events", required=True, type=Path,
                        help="events.jsonl of fault injections and removals (may be absent)")
    parser.add_argument("--out", required=True, type=Path, help="the report folder to write into")
    parser.add_argument("--max-age", type=float, default=20.0,
                        help="steady-state limit on the worst healthy age, in seconds (default 20)")
    parser.add_argument("--title", help="title of the report (default: the experiment's title)")
    args = parser.parse_args(argv)
    if not math.isfinite(args.max_age) or args.max_age <= 0:
        parser.error("--max-age must be a positive number of seconds")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: 0 once the report is written, 2 when there is nothing to report on, 1 when it cannot be written."""
    args = parse_args(argv)
    try:
        journal = load_journal(args.journal)
    except JournalError as error:
        print(f"report.py: {error}", file=sys.stderr)
        return 2
    run = build_run(journal, load_timeline(args.timeline), args.events, args.max_age, args.title)
    try:
        document = write_report(run, args.out)
    except OSError as error:
        print(f"report.py: cannot write the report into {args.out}: {error}", file=sys.stderr)
        return 1
    print(f"{document['verdict']}: {document['reason']} ({args.out / 'report.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
