#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: creates the virtual environments
# it needs, makes sure a Redis server is reachable, then runs pytest.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k index   # extra arguments go to pytest
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

# A real Redis: use the one on 127.0.0.1:6379 when it answers, else start one.
if [ -z "${REDIS_TEST_URL:-}" ]; then
  if .venv/bin/python -c "import redis,sys; redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=1).ping()" 2>/dev/null; then
    export REDIS_TEST_URL=redis://127.0.0.1:6379/13
  else
    if ! command -v redis-server >/dev/null; then
      echo "== installing redis-server"
      (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
    fi
    port=6391
    echo "== starting redis-server on 127.0.0.1:$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir /tmp --logfile /tmp/vlmine-test-redis.log
    for _ in $(seq 50); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    export REDIS_TEST_URL=redis://127.0.0.1:$port/13
  fi
fi

# Headless Chromium for the report page's browser test (tests/test_report.py).
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
fi

export PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
