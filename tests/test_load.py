"""The load script with small numbers: concurrent visitors, no errors, no cross-talk."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_concurrent_visitors_get_only_their_own_answers(tmp_path):
    out = tmp_path / "load.json"
    completed = subprocess.run([sys.executable, "scripts/load_test.py", "--visitors", "3", "--tasks", "2",
                                "--steps", "2", "--max-seconds", "300", "--json", str(out)], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["completed"] == 6 and report["errors"] == 0 and report["crosstalk"] == 0
    assert report["queries_per_task"] == [15] and report["queries_sent"] == report["queries_answered"] == 6 * 15
