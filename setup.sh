#!/usr/bin/env bash
# Set-up on a fresh machine: a virtualenv in .venv with requirements.txt installed.
# Idempotent and quick when nothing changed (a stamp of requirements.txt is kept in .venv).
# Usage: source setup.sh   (or bash setup.sh)
# Sourced, it must leave the user's shell as it found it (no `set -e`): every step checks its
# own result and `return`s (sourced) or `exit`s (run) on failure.
_wm_setup() {
  local root py stamp sum
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  py="${PYTHON:-python3}"
  if [ ! -x "$root/.venv/bin/python" ]; then
    echo "setup: creating $root/.venv"
    "$py" -m venv "$root/.venv" || { echo "setup: '$py -m venv' failed (install python3-venv?)" >&2; return 1; }
  fi
  stamp="$root/.venv/.requirements.sha"
  sum="$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    echo "setup: installing requirements.txt (first time: a few minutes)"
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/requirements.txt" \
      || { echo "setup: pip install failed (see above)" >&2; return 1; }
    echo "$sum" > "$stamp"
  fi
  export PATH="$root/.venv/bin:$PATH"
  export TF_ENABLE_ONEDNN_OPTS=1 TF_CPP_MIN_LOG_LEVEL=2
}
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  _wm_setup
  _wm_status=$?
  unset -f _wm_setup
  return $_wm_status
fi
_wm_setup || exit 1
