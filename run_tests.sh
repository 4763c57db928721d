#!/usr/bin/env bash
# The test command: set-up (virtualenv + requirements) then the default test run (~6 min on 2 cores).
# Window tests start their own Xvfb; they are skipped with a reason if Xvfb/xdotool are missing
# (on Debian/Ubuntu: apt-get install -y xvfb xdotool). Extra arguments go to pytest.
set -e
cd "$(dirname "$0")"
source ./setup.sh
exec python -m pytest -q "$@"
