#!/usr/bin/env bash
# Starts the backend on its embedded defaults (no Redis; state in SQLite under
# MODEL_DIR, default ./data) on port 9090, after creating .venv if needed.
#   bash scripts/serve.sh                 # production server (gunicorn) on 0.0.0.0:9090
#   PORT=9091 bash scripts/serve.sh
#   DEV=1 bash scripts/serve.sh           # Werkzeug's development server, same settings
# Both are `python -m backend serve` (the `vlmine serve` command): one place for the flags.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.runtime.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
if [ "${DEV:-0}" = "1" ]; then
  exec .venv/bin/python -m backend serve --dev --host "${HOST:-0.0.0.0}" --port "${PORT:-9090}"
fi
exec .venv/bin/python -m backend serve --host "${HOST:-0.0.0.0}" --port "${PORT:-9090}"
