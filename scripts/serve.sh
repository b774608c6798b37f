#!/usr/bin/env bash
# Starts the backend on its embedded defaults (no Redis; state in SQLite under
# MODEL_DIR, default ./data) on port 9090, after creating .venv if needed.
#   bash scripts/serve.sh                 # development server on 0.0.0.0:9090
#   PORT=9091 bash scripts/serve.sh
#   GUNICORN=1 bash scripts/serve.sh      # production server (gunicorn)
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
if [ "${GUNICORN:-0}" = "1" ]; then
  exec .venv/bin/gunicorn --bind "${HOST:-0.0.0.0}:${PORT:-9090}" --workers 1 --threads 8 --timeout 120 _wsgi:app
fi
exec .venv/bin/python _wsgi.py --host "${HOST:-0.0.0.0}" --port "${PORT:-9090}"
