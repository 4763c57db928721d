#!/usr/bin/env bash
# The main job: set-up, then the shipped agent drives one episode -- in a window where there is a
# display, into videos/agent.mp4 where there is none. Extra arguments go to model.py (e.g. a seed).
set -e
cd "$(dirname "$0")"
source ./setup.sh
if [ -f log/carracing.cma.16.64.best.json ] && [ -f vae/vae.json ] && [ -f rnn/rnn.json ]; then
  exec python model.py render log/carracing.cma.16.64.best.json "$@" --video-if-headless videos/agent.mp4
else
  echo "no trained agent in this checkout yet: random weights drive instead"
  exec python model.py render "$@" --video-if-headless videos/agent.mp4
fi
