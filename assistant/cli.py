"""`assistant` command line: one sub-command per module in assistant/commands/.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int`. Modules are imported lazily so that `assistant parse` never pays for
loading Whisper.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from assistant.errors import UserError

# sub-commands, each the module of that name under assistant.commands
COMMANDS = ("transcribe", "parse", "ask", "catalog", "serve", "replay", "mic", "models", "db")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Speech-to-NER assistant for store associates (EN/ES)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Register only the command asked for when we can tell which it is (fast start-up),
    # every command otherwise (for --help).
    wanted = [a for a in argv if not a.startswith("-")][:1]
    names = wanted if wanted and wanted[0] in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(f"assistant.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"assistant {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
