#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: creates the virtual environments
# it needs, installs redis-server and Chromium when missing, then runs pytest.
#   bash scripts/test.sh                           # everything
#   bash scripts/test.sh -m "not e2e and not slow" # the fast loop (tests/README.md)
#   bash scripts/test.sh -k index                  # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing requirements into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# A real Label Studio for the end-to-end tests, in its own environment
# (it pins Django and its own SDK, which must not mix with the backend's).
LS_VENV=${VLMINE_LS_VENV:-$ROOT/.venv-ls}
if [ ! -x "$LS_VENV/bin/label-studio" ]; then
  echo "== installing Label Studio 1.23.2 into $LS_VENV (about 80 s)"
  "$PY" -m venv "$LS_VENV"
  "$LS_VENV/bin/pip" install -q --disable-pip-version-check label-studio==1.23.2
fi
export VLMINE_LS_VENV="$LS_VENV"

# redis-server for the tests: the test run starts its own on a free port with a temporary
# directory and stops it at the end (tests/support/redis_server.py). A Redis that is already
# running, on the default port or any other, is never used: it may hold someone's data.
if ! command -v redis-server >/dev/null; then
  echo "== installing redis-server"
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi

# Headless Chromium for the report page's browser test (tests/test_report.py).
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
fi

export PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
