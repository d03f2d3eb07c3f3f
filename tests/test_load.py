"""The load script with small numbers, on both paths: concurrent visitors, no errors, no cross-talk."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path, tasks, per_task", [("api", 2, 15), ("page", 1, 25)])
def test_concurrent_visitors_get_only_their_own_answers(tmp_path, path, tasks, per_task):
    out = tmp_path / "load.json"
    completed = subprocess.run([sys.executable, "scripts/load_test.py", "--path", path, "--visitors", "3", "--tasks",
                                str(tasks), "--steps", "2", "--max-seconds", "300", "--json", str(out)], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["completed"] == 3 * tasks and report["errors"] == 0 and report["crosstalk"] == 0
    assert report["queries_per_task"] == [per_task]
    assert report["queries_sent"] == report["queries_answered"] == 3 * tasks * per_task
    if path == "page":  # every visitor's time to the first answers is measured too
        assert len(report["first_answer_seconds"]) == 3 and report["first_answer_p95_seconds"] is not None
