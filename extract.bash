#!/usr/bin/env bash
# Rollouts on many workers, headless (no X server, no xvfb: pygame draws off-screen).
#
#   bash extract.bash                 # one worker per core, 200 episodes each (the original: 64 x 200)
#   WORKERS=64 EPISODES=200 bash extract.bash       # also OUT=record LOGS=log/extract
#   bash extract.bash --renderer turbo --max-frames 1000   # extra flags go to every extract.py
#   bash extract.bash --policy follow --seed-start 110000  # driving data (extract.py --help)
#
# Writes record/<seed>.npz; files already there are skipped, so rerunning resumes.
set -u
cd "$(dirname "$0")"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,9p' "$0" | cut -c3-
  echo
  echo "Flags of every worker (extract.py):"
  exec "${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}" extract.py --help
fi
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 1)}
EPISODES=${EPISODES:-200}
OUT=${OUT:-record}
LOGS=${LOGS:-log/extract}
mkdir -p "$OUT" "$LOGS"
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy OMP_NUM_THREADS=1
echo "extract: $WORKERS workers x $EPISODES episodes -> $OUT/ (logs in $LOGS/)"
pids=()
for ((w = 0; w < WORKERS; w++)); do
  "$PY" extract.py --worker "$w" --num-episodes "$EPISODES" --out-dir "$OUT" "$@" \
    > "$LOGS/worker_$w.log" 2>&1 &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=$((failed + 1))
done
grep -ah "wrote" "$LOGS"/worker_*.log
"$PY" extract.py --count --out-dir "$OUT"
if [ "$failed" -ne 0 ]; then
  echo "extract: $failed worker(s) exited with an error; see $LOGS/" >&2
  exit 1
fi
