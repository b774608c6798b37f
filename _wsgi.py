"""Entry point: ``gunicorn _wsgi:app`` in production, ``python _wsgi.py --port 9090`` for development."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from backend.errors import SettingsError
from backend.logs import configure_logging
from backend.server import create_app
from backend.settings import Settings
from model import VLMineModel


def build_app(settings: Settings | None = None):
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    logging.getLogger("vlmine").info("settings: %s", json.dumps(settings.public(), default=str))
    return create_app(settings, VLMineModel)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="VLMine ML backend for Label Studio (development server)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--model-dir", help="overrides MODEL_DIR")
    parser.add_argument("--log-level", help="overrides LOG_LEVEL")
    args = parser.parse_args(argv)
    if args.model_dir:
        os.environ["MODEL_DIR"] = args.model_dir
    if args.log_level:
        os.environ["LOG_LEVEL"] = args.log_level
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        parser.exit(2, f"configuration error: {exc}\n")
    build_app(settings).run(host=args.host, port=args.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
else:
    try:
        app = build_app()
    except SettingsError as exc:  # one readable line before the server's traceback
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise
