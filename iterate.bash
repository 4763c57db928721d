#!/usr/bin/env bash
# One round of iterative training (the paper's own idea for tasks where random rollouts miss
# the states that matter): record driving data, train V and M further on it, train C on them.
#
#   OUT=runs/round2 SEED0=200000 bash iterate.bash   # the next round, from the shipped agent
#     (round 1's since 2026-12-03); OUT defaults to runs/iteration, SEED0 to 100000 (round 1's
#     data seeds); CONTROLLER, VAE and RNN name another agent's files
#
# Every stage resumes: after a stop (or --max-minutes), run the same command again.
#   1. data   extract.bash: RANDOM_EPS random (the original's policy), WANDER_EPS correlated
#             random driving, FOLLOW_EPS a scripted track follower, AGENT_EPS the CONTROLLER (on
#             VAE and RNN) with correlated action noise (up to NOISE), RENDERER (obs64), one worker per core
#   2. V      vae_train.py --init VAE on all of it (HOLDOUT episodes kept out), V_MIN minutes
#   3. series series.py with the new V (skipped when up to date)
#   4. M      rnn_train.py --init RNN on the new series, M_MIN minutes
#   5. C      train.py: CMA-ES from CONTROLLER's mean (C re-learns the new latents), population
#             POP x EPISODES tracks, common to a generation, --stall_frames STALL, RENDERER and
#             int8 V, until stopped (C_FLAGS="--generations N" to stop after N)
# Then score: python model.py norender $OUT/log/carracing.cma.$EPISODES.$POP.best.json 20000 \
#   --vae $OUT/vae/vae.json --rnn $OUT/rnn/rnn.json
# Each stage's wall-clock goes to $OUT/times.txt. Extra flags per stage: EXTRACT_FLAGS, V_FLAGS,
# M_FLAGS, C_FLAGS (the tests use them for a tiny round).
set -eu
cd "$(dirname "$0")"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,22p' "$0" | cut -c3-; exit 0; fi
source ./setup.sh
OUT=${OUT:-runs/iteration}
RECORD=${RECORD:-$OUT/record}
CONTROLLER=${CONTROLLER:-log/carracing.cma.16.64.best.json}
VAE=${VAE:-vae/vae.json}
RNN=${RNN:-rnn/rnn.json}
SEED0=${SEED0:-100000}            # driving seeds must lie in [100000, 2**20)
RANDOM_EPS=${RANDOM_EPS:-200} WANDER_EPS=${WANDER_EPS:-100} FOLLOW_EPS=${FOLLOW_EPS:-300} AGENT_EPS=${AGENT_EPS:-400}
NOISE=${NOISE:-0.3} HOLDOUT=${HOLDOUT:-40} V_MIN=${V_MIN:-40} M_MIN=${M_MIN:-25}
POP=${POP:-64} EPISODES=${EPISODES:-2} STALL=${STALL:-50}  # C: more candidates on fewer tracks (docs/results.md)
ENCODER=${ENCODER:-int8}          # V's encoder while driving: int8 (LiteRT, ~5x faster) or numpy
RENDERER=${RENDERER:-obs64}       # while driving: obs64 (the fastest), turbo or exact
WORKERS=${WORKERS:-$(nproc)}
mkdir -p "$OUT"
for f in "$CONTROLLER" "$VAE" "$RNN"; do
  [ -f "$f" ] || { echo "iterate: $f not found (set CONTROLLER, VAE and RNN)" >&2; exit 2; }
done
stage() {  # stage NAME COMMAND...: run it, log its wall-clock
  local t0=$SECONDS
  echo "== $1: ${*:2}"
  "${@:2}"
  echo "$1 $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"
}
extract() {  # extract POLICY EPISODES SEED_START [flags]
  local n=$(( ($2 + WORKERS - 1) / WORKERS ))
  [ "$2" -gt 0 ] || return 0
  local logs="$OUT/extract_$1"
  OUT="$RECORD" LOGS="$logs" EPISODES=$n WORKERS=$WORKERS \
    bash extract.bash --renderer "$RENDERER" --policy "$1" --seed-start "$3" "${@:4}" ${EXTRACT_FLAGS:-}
}
# seed blocks in the order the trainers' --holdout takes from (the last files: agent episodes)
stage data-random extract random "$RANDOM_EPS" "$SEED0"
stage data-wander extract wander "$WANDER_EPS" $((SEED0 + 5000))
stage data-follow extract follow "$FOLLOW_EPS" $((SEED0 + 10000))
stage data-agent extract agent "$AGENT_EPS" $((SEED0 + 20000)) --controller "$CONTROLLER" --vae "$VAE" --rnn "$RNN" \
  --encoder "$ENCODER" --noise "$NOISE"
stage V python vae_train.py --init "$VAE" --record-dir "$RECORD" --holdout "$HOLDOUT" --out "$OUT/vae/vae.json" \
  --max-minutes "$V_MIN" --resume ${V_FLAGS:-}
if [ ! -f "$OUT/series/series.npz" ] || [ "$OUT/vae/vae.json" -nt "$OUT/series/series.npz" ]; then
  stage series python series.py --record-dir "$RECORD" --vae "$OUT/vae/vae.json" --out "$OUT/series/series.npz"
fi
stage M python rnn_train.py --init "$RNN" --series "$OUT/series/series.npz" --out-dir "$OUT/rnn" \
  --initial-z-out "$OUT/initial_z/initial_z.json" --holdout "$HOLDOUT" --max-minutes "$M_MIN" --resume ${M_FLAGS:-}
BASE="$OUT/log/carracing.cma.$EPISODES.$POP"
if [ -f "$BASE.ckpt.pkl" ]; then C_START=--resume
else mkdir -p "$OUT/log"; cp "$CONTROLLER" "$BASE.json"; C_START="--retrain 1"; fi  # the mean starts at CONTROLLER
stage C python train.py -n "$POP" -t 1 --num_episode "$EPISODES" --common_tracks 1 --stall_frames "$STALL" \
  --renderer "$RENDERER" --encoder "$ENCODER" --eval_steps 10 --num_eval_episode 48 --vae "$OUT/vae/vae.json" \
  --rnn "$OUT/rnn/rnn.json" --log-dir "$OUT/log" $C_START ${C_FLAGS:-}
echo "round done: $OUT (stage times in $OUT/times.txt)"
