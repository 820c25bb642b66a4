"""Tests of report.py against real Chaos Toolkit journals (testdata/) and synthetic timelines."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import unittest
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional

from flatline_chaos import report

TESTDATA = Path(__file__).resolve().parent / "testdata"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fixture(name: str) -> dict[str, Any]:
    """A journal from testdata/, as a fresh dict a test may alter."""
    return json.loads((TESTDATA / f"journal-{name}.json").read_text(encoding="utf-8"))


def at(journal: dict[str, Any], seconds: float) -> str:
    """An ISO time `seconds` after the journal's start, written as the TypeScript side writes it."""
    start = datetime.fromisoformat(journal["start"])
    return (start + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inject(journal: dict[str, Any], seconds: float, target: str = "devices-slow") -> dict[str, Any]:
    """An inject event of the kind `flatline fault on` writes."""
    return {"t": at(journal, seconds), "action": "inject", "target": target, "detail": "flats 7 delay 30s"}


def remove(journal: dict[str, Any], seconds: float, target: str = "*") -> dict[str, Any]:
    """A remove event of the kind `flatline fault off` writes."""
    return {"t": at(journal, seconds), "action": "remove", "target": target, "detail": "off"}


def samples(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """A timeline across the run with one unanswered query in the middle."""
    rows = []
    for n, seconds in enumerate((0.0, 0.3, 0.6, 0.9)):
        answered = n != 2
        rows.append({"t": at(journal, seconds), "worst_healthy_age_s": 4.0 + n if answered else None,
                     "p99_healthy_age_s": 3.0 if answered else None, "query_ok": answered,
                     "flats": 24, "never_fetched": 0})
    return rows


class ReportCase(unittest.TestCase):
    """Runs the command in-process on files in a temporary folder."""

    def setUp(self) -> None:
        self.tmp = Path(self.enterContext(tempfile.TemporaryDirectory()))
        self.out = self.tmp / "report"
        self.stderr = io.StringIO()

    def write_jsonl(self, name: str, rows: list[dict[str, Any]]) -> Path:
        """Write rows as JSON lines."""
        path = self.tmp / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    def run_report(self, journal: dict[str, Any], events: Optional[list[dict[str, Any]]] = None,
                   timeline: Optional[list[dict[str, Any]]] = None, *extra: str) -> dict[str, Any]:
        """Write the inputs, run main(), insist on exit 0 and return verdict.json."""
        journal_path = self.tmp / "journal.json"
        journal_path.write_text(json.dumps(journal), encoding="utf-8")
        timeline_path = self.tmp / "absent-timeline.jsonl"
        if timeline is not None:
            timeline_path = self.write_jsonl("timeline.jsonl", timeline)
        events_path = self.write_jsonl("events.jsonl", events or [])
        args = ["--journal", str(journal_path), "--timeline", str(timeline_path),
                "--events", str(events_path), "--out", str(self.out), *extra]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(self.stderr):
            code = report.main(args)
        self.assertEqual(code, 0, self.stderr.getvalue())
        return json.loads((self.out / "verdict.json").read_text(encoding="utf-8"))

    def markdown(self) -> str:
        """The report.md just written."""
        return (self.out / "report.md").read_text(encoding="utf-8")


class VerdictTest(ReportCase):
    """The verdict reads every steady-state entry, not Chaos Toolkit's status alone."""

    def test_passing_journal_passes(self) -> None:
        journal = fixture("passed")
        verdict = self.run_report(journal, [inject(journal, 0.01), remove(journal, 1.0)], samples(journal))
        self.assertEqual(verdict["verdict"], "passed", verdict["reason"])
        self.assertEqual((verdict["steady_state_checks"], verdict["steady_state_failures"]), (4, 0))
        self.assertEqual(verdict["faults_not_removed"], [])
        self.assertFalse(verdict["deviated"])
        self.assertEqual(verdict["status"], "completed")
        self.assertAlmostEqual(verdict["duration_s"], 1.016, places=2)
        self.assertIn("**Verdict: PASSED**", self.markdown())

    def test_deviating_journal_names_the_failing_probe(self) -> None:
        verdict = self.run_report(fixture("deviated"))
        self.assertEqual(verdict["verdict"], "deviated")
        self.assertTrue(verdict["deviated"])
        self.assertIn("service-answers", verdict["reason"])
        self.assertIn("during #1", verdict["reason"])
        self.assertEqual(verdict["steady_state_failures"], 2)
        self.assertIn("**Verdict: DEVIATED**", self.markdown())

    def test_completed_with_steady_state_unmet_before_does_not_pass(self) -> None:
        journal = fixture("before-unmet")
        self.assertEqual((journal["status"], journal["deviated"]), ("completed", False))
        verdict = self.run_report(journal)
        self.assertEqual(verdict["verdict"], "failed")
        self.assertIn("not met before", verdict["reason"])
        self.assertIn("service-answers", verdict["reason"])

    def test_inject_without_remove_fails_and_says_not_removed(self) -> None:
        journal = fixture("passed")
        events = [inject(journal, 0.01), inject(journal, 0.02, "node-b"), remove(journal, 0.5, "node-b")]
        verdict = self.run_report(journal, events, samples(journal))
        self.assertEqual(verdict["verdict"], "failed")
        self.assertEqual(verdict["faults_not_removed"], ["devices-slow"])
        self.assertIn("NOT REMOVED", verdict["reason"])
        self.assertIn("NOT REMOVED", self.markdown())

    def test_interrupted_run_fails(self) -> None:
        verdict = self.run_report(fixture("interrupted"))
        self.assertEqual((verdict["verdict"], verdict["status"]), ("failed", "interrupted"))
        self.assertIn("interrupted", verdict["reason"])
        self.assertIn("FAILED (interrupted)", self.markdown())

    def test_failed_method_action_fails(self) -> None:
        verdict = self.run_report(fixture("action-failed"))
        self.assertEqual(verdict["verdict"], "failed")
        self.assertIn("let-it-act", verdict["reason"])

    def test_failed_rollback_fails(self) -> None:
        journal = fixture("passed")
        journal["rollbacks"][0]["status"] = "failed"
        verdict = self.run_report(journal)
        self.assertEqual(verdict["verdict"], "failed")
        self.assertIn("rollback 'remove-every-fault'", verdict["reason"])

    def test_evidence_probe_out_of_tolerance_fails(self) -> None:
        journal = fixture("passed")
        journal["run"][2]["output"]["status"] = 1  # chaoslib still records "succeeded"
        verdict = self.run_report(journal)
        self.assertEqual(verdict["verdict"], "failed")
        self.assertIn("the-fault-took-effect", verdict["reason"])
        self.assertIn("| the-fault-took-effect | succeeded | 0 | exit 1", self.markdown())

    def test_fail_fast_status_with_unmet_check_is_a_deviation(self) -> None:
        journal = fixture("deviated")
        journal["status"], journal["deviated"] = "failed", False  # --fail-fast, after met
        journal["steady_states"]["after"]["steady_state_met"] = True
        journal["steady_states"]["after"]["probes"][0]["tolerance_met"] = True
        verdict = self.run_report(journal)
        self.assertEqual(verdict["verdict"], "deviated")
        self.assertTrue(verdict["deviated"])
        self.assertEqual(verdict["steady_state_failures"], 1)

    def test_unmet_during_check_is_caught_even_if_journal_says_not_deviated(self) -> None:
        journal = fixture("passed")
        journal["steady_states"]["during"][1]["steady_state_met"] = False
        journal["steady_states"]["during"][1]["probes"][0]["tolerance_met"] = False
        verdict = self.run_report(journal)
        self.assertEqual(verdict["verdict"], "deviated")
        self.assertIn("during #2", verdict["reason"])

    def test_no_check_before_does_not_pass(self) -> None:
        journal = fixture("passed")
        journal["steady_states"]["before"] = None
        verdict = self.run_report(journal)
        self.assertEqual(verdict["verdict"], "failed")
        self.assertIn("no steady-state check ran before", verdict["reason"])


class ContentTest(ReportCase):
    """What report.md and freshness.png hold."""

    def test_report_has_the_injected_table_and_the_image_link(self) -> None:
        journal = fixture("passed")
        self.run_report(journal, [inject(journal, 0.01), remove(journal, 1.0)], samples(journal))
        text = self.markdown()
        self.assertIn("| target | detail | injected at | removed at | duration |", text)
        self.assertRegex(text, r"\| devices-slow \| flats 7 delay 30s \| 2026-11-29 11:55:50\.10\dZ \(\+0\.0 s\) "
                               r"\| 2026-11-29 11:55:51\.09\dZ \| 1\.0 s \|")
        self.assertIn("![freshness timeline](freshness.png)", text)
        self.assertIn("| after | +1.0 s | service-answers | 0 | exit 0 | yes |", text)
        self.assertIn("| remove-every-fault | succeeded | exit 0 |", text)
        self.assertIn("| sleep_seconds | $TINY_SLEEP (default 1) |", text)
        self.assertIn("exit 0; stdout: touched 12 requests", text)

    def test_freshness_png_is_a_png_of_reasonable_size(self) -> None:
        journal = fixture("passed")
        self.run_report(journal, [inject(journal, 0.01), remove(journal, 1.0)], samples(journal))
        data = (self.out / "freshness.png").read_bytes()
        self.assertEqual(data[:8], PNG_MAGIC)
        self.assertGreater(len(data), 10_000)
        self.assertLess(len(data), 1_000_000)

    def test_freshness_summary_counts_unanswered_and_faulted_samples(self) -> None:
        journal = fixture("passed")
        timeline = samples(journal)
        verdict = self.run_report(journal, [inject(journal, 0.5), remove(journal, 1.0)], timeline)
        self.assertEqual(verdict["unanswered"], 1)
        self.assertEqual(verdict["worst_healthy_age_s"], 7.0)
        text = self.markdown()
        self.assertIn("7.0 s overall, 7.0 s during faults, 5.0 s outside them", text)
        self.assertIn("Query service unanswered: 1 of 4 samples (1 during faults)", text)

    def test_missing_timeline_still_writes_the_report(self) -> None:
        verdict = self.run_report(fixture("passed"), timeline=None)
        self.assertIsNone(verdict["worst_healthy_age_s"])
        self.assertEqual(verdict["unanswered"], 0)
        self.assertIn("No timeline was recorded", self.markdown())
        self.assertEqual((self.out / "freshness.png").read_bytes()[:8], PNG_MAGIC)

    def test_torn_and_empty_timeline_lines_are_skipped(self) -> None:
        journal = fixture("passed")
        path = self.tmp / "timeline.jsonl"
        good = json.dumps(samples(journal)[0])
        path.write_text(f"\n{good}\n{{\"t\": \"2026-11\n\n", encoding="utf-8")
        timeline = report.load_timeline(path)
        self.assertEqual((len(timeline.samples), timeline.skipped_lines, timeline.recorded), (1, 1, True))

    def test_title_option_overrides_the_experiment_title(self) -> None:
        self.run_report(fixture("passed"), None, None, "--title", "H1 on the laptop")
        self.assertTrue(self.markdown().startswith("# H1 on the laptop\n"))


class FaultWindowTest(unittest.TestCase):
    """Pairing injects with removes."""

    def event(self, seconds: float, action: str, target: str) -> report.Event:
        """An event `seconds` after a fixed instant."""
        return report.Event(datetime(2026, 11, 29, 12, 0, tzinfo=report.timezone.utc) + timedelta(seconds=seconds),
                            action, target, "")

    def test_a_remove_closes_only_its_own_target_and_star_closes_all(self) -> None:
        windows = report.fault_windows([
            self.event(1, "inject", "devices-slow"), self.event(2, "inject", "node-b"),
            self.event(3, "remove", "devices-slow"), self.event(4, "remove", "database"),
            self.event(5, "remove", "*"), self.event(6, "inject", "database"),
        ])
        ends = [(w.target, None if w.end is None else w.end.second) for w in windows]
        self.assertEqual(ends, [("devices-slow", 3), ("node-b", 5), ("database", None)])

    def test_events_outside_the_run_are_ignored(self) -> None:
        start = datetime(2026, 11, 29, 12, 0, tzinfo=report.timezone.utc)
        path = Path(self.enterContext(tempfile.TemporaryDirectory())) / "events.jsonl"
        rows = [{"t": (start + timedelta(seconds=s)).isoformat(), "action": "inject", "target": f"t{s}"}
                for s in (-3600, -2, 30, 64, 3600)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")
        events = report.load_events(path, start, start + timedelta(seconds=60))
        self.assertEqual([e.target for e in events], ["t-2", "t30", "t64"])


class CommandLineTest(ReportCase):
    """Exit codes and messages."""

    def test_unreadable_journal_exits_2_with_a_message(self) -> None:
        for content, message in ((None, "cannot read the journal"), ("{not json", "is not JSON"),
                                 ("[]", "not a Chaos Toolkit journal")):
            path = self.tmp / "journal.json"
            path.unlink(missing_ok=True)
            if content is not None:
                path.write_text(content, encoding="utf-8")
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                code = report.main(["--journal", str(path), "--timeline", "t", "--events", "e",
                                    "--out", str(self.out)])
            self.assertEqual(code, 2)
            self.assertIn(message, stderr.getvalue())
            self.assertFalse(self.out.exists())

    def test_bad_arguments_exit_2(self) -> None:
        for args in ([], ["--journal", "j", "--timeline", "t", "--events", "e", "--out", "o", "--max-age", "-1"]):
            with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as raised:
                report.main(args)
            self.assertEqual(raised.exception.code, 2)

    def test_runs_as_a_script_with_help(self) -> None:
        script = Path(report.__file__)
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=False)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("--max-age", done.stdout)


if __name__ == "__main__":
    unittest.main()
