"""The ``vlmine`` command (and ``python -m backend``): serve, worker, mine, evaluate.

``vlmine serve`` starts the production server, gunicorn on ``_wsgi:app`` (``--dev``: the
development server of ``python _wsgi.py``, same settings); ``vlmine worker`` is
``python -m backend.worker``; ``vlmine mine`` and ``vlmine evaluate`` are the offline
commands. Every setting comes from the environment, as for the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

USAGE = """usage: vlmine {serve,worker,mine,evaluate} ... (-h after a command for its options)
  serve     the ML backend for Label Studio (gunicorn; --dev for the development server)
  worker    an RQ worker that mines on this machine (needs REDIS_URL)
  mine      rank a folder, s3:// prefix, Label Studio export or JSONL file long-tail first
  evaluate  compare VLMine with random and uncertainty selection on a labeled long-tail image set"""
COMMANDS = ("serve", "worker", "mine", "evaluate")


def serve_argv(argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """The process ``vlmine serve`` becomes: gunicorn on _wsgi:app, or ``--dev`` the development server.

    One worker process (the embedded queue's threads and the SQLite state live in it) with
    threads for concurrent requests, as the Docker image runs it.
    """
    parser = argparse.ArgumentParser(prog="vlmine serve", description="Serve the ML backend for Label Studio.")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"), help="interface (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9090")), help="port (default 9090)")
    parser.add_argument("--dev", action="store_true", help="Werkzeug's development server instead of gunicorn")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads (default 8)")
    parser.add_argument("--timeout", type=int, default=120, help="gunicorn worker timeout in seconds (default 120)")
    args = parser.parse_args(list(argv))
    if args.dev:
        return [python, "-m", "_wsgi", "--host", args.host, "--port", str(args.port)]
    return [python, "-m", "gunicorn", "--bind", f"{args.host}:{args.port}", "--workers", "1",
            "--threads", str(args.threads), "--timeout", str(args.timeout), "_wsgi:app"]


def main(argv: Sequence[str] | None = None, prog: str = "vlmine") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = USAGE.replace("vlmine", prog, 1)
    if not argv or argv[0] not in COMMANDS:
        help_asked = bool(argv) and argv[0] in ("-h", "--help")
        message = usage if help_asked or not argv else f"{usage}\nerror: unknown command {argv[0]!r}"
        print(message, file=sys.stdout if help_asked else sys.stderr)
        return 0 if help_asked else 2
    command, rest = argv[0], argv[1:]
    if command == "serve":
        cmd = serve_argv(rest)
        os.execv(cmd[0], cmd)  # the server replaces this process: signals reach gunicorn directly
    if command == "worker":
        from .jobs.worker import main as worker_main

        return worker_main(rest)
    if command == "mine":
        from .offline.mine import main as mine_main

        return mine_main(rest)
    from .offline.evaluate import main as evaluate_main

    return evaluate_main(rest)
