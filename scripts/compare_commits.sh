#!/bin/bash
# Compare the page's cost at two commits on this machine, back to back and alternating (A B A B), each on
# its own clean clone, each command with cold caches of its own: the median task of 10 profiled
# (scripts/profile_task.py --tasks 10) and a class of 30 on a started server (scripts/load_test.py
# --visitors 30 --tasks 1 --burst --warm). Neither needs the prepared dataset: both use the committed gallery.
#
#     bash scripts/compare_commits.sh REV_A REV_B [ROUNDS]      # e.g. 4502943 39f18e0 2
set -euo pipefail
a=$1 b=$2 rounds=${3:-2}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
export GRADIO_ANALYTICS_ENABLED=False
echo "| round | commit | one task, gallery: CPU s in the page's path / served | own pictures: in the page's path / served | class of 30 (--warm): first answers p95 s | complete p95 s |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  for rev in "$a" "$b"; do
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    git clone -q "$repo" "$work/repo" && git -C "$work/repo" checkout -q "$rev"
    cold() { mkdir -p "$work/$1"; echo "env TMPDIR=$work/$1 NUMBA_CACHE_DIR=$work/$1/numba GRADIO_TEMP_DIR=$work/$1/gradio"; }
    (cd "$work/repo" && $(cold profile) python scripts/profile_task.py --tasks 10 --out "$work/profile.md" > /dev/null 2>&1)
    (cd "$work/repo" && $(cold load) python scripts/load_test.py --visitors 30 --tasks 1 --burst --warm \
        --json "$work/burst.json" > /dev/null 2>&1)
    python - "$work" "$round" "$rev" <<'PY'
import json, sys
from pathlib import Path
work, round_, rev = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
profile = json.loads((work / "profile.json").read_text())
burst = json.loads((work / "burst.json").read_text())
cell = lambda kind: (f"{sum(v[0] for v in profile[kind]['phases'].values()):.3f} / "
                     f"{profile[kind]['served']['cpu_s']:.3f}")
print(f"| {round_} | {rev} | {cell('gallery')} | {cell('own')} | {burst['first_answer_p95_seconds']:.1f} "
      f"| {burst['p95_seconds']:.1f} |")
PY
    rm -rf "$work"
  done
done
