#!/usr/bin/env bash
# Set-up on a fresh machine: a virtualenv in .venv with requirements.txt installed.
# Idempotent and quick when nothing changed (a stamp of requirements.txt is kept in .venv).
# Usage: source setup.sh   (or bash setup.sh)
set -e
_wm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_wm_py="${PYTHON:-python3}"
if [ ! -x "$_wm_root/.venv/bin/python" ]; then
  echo "setup: creating $_wm_root/.venv"
  "$_wm_py" -m venv "$_wm_root/.venv"
fi
_wm_stamp="$_wm_root/.venv/.requirements.sha"
_wm_sum="$(sha256sum "$_wm_root/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$_wm_stamp" 2>/dev/null)" != "$_wm_sum" ]; then
  echo "setup: installing requirements.txt (first time: a few minutes)"
  "$_wm_root/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$_wm_root/requirements.txt"
  echo "$_wm_sum" > "$_wm_stamp"
fi
export PATH="$_wm_root/.venv/bin:$PATH"
export TF_ENABLE_ONEDNN_OPTS=1 TF_CPP_MIN_LOG_LEVEL=2
