"""``python -m backend mine ...`` and ``python -m backend evaluate ...``: see backend/offline/mine.py, backend/offline/evaluate.py."""

import importlib
import sys

COMMANDS = {"mine": "backend.offline.mine", "evaluate": "backend.offline.evaluate"}
USAGE = """usage: python -m backend {mine,evaluate} ... (-h after a command for its options)
  mine      rank a folder, s3:// prefix, Label Studio export or JSONL file long-tail first
  evaluate  compare VLMine with random and uncertainty selection on a labeled long-tail image set"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        help_asked = bool(argv) and argv[0] in ("-h", "--help")
        print(USAGE if help_asked else f"{USAGE}\nerror: unknown command {argv[0]!r}" if argv else USAGE,
              file=sys.stdout if help_asked else sys.stderr)
        return 0 if help_asked else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
