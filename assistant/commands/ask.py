"""`assistant ask TEXT [--store ID] [--json]`: parse, link to the catalog, answer."""

from __future__ import annotations

import argparse
import json

from assistant.domain import DOMAIN_HELP
from assistant.errors import UserError, check_text


def register(subparsers) -> None:
    parser = subparsers.add_parser("ask", help="answer a typed question (parse, link, answer)")
    parser.add_argument("text", nargs="+", help="the question, e.g. 'where can I find tide pods'")
    parser.add_argument("--store", default="1", help="store id (default: %(default)s)")
    parser.add_argument("--domain", default="retail", help=DOMAIN_HELP + " (default: %(default)s)")
    parser.add_argument("--language", choices=("auto", "en", "es"), default="auto")
    parser.add_argument("--json", action="store_true", help="print the JSON contract of DESIGN.md")
    parser.add_argument(
        "--db", default=None, help="database URL (default: $RETAIL_ASSISTANT_DB or the SQLite file)"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="use the gazetteer baseline parser, not the learned one",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the NLU student runs (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.pipeline import build_assistant

    text = check_text(" ".join(args.text).strip(), "the question")
    if not text:
        raise UserError("empty question; pass the question as TEXT")
    bundle = build_assistant(
        args.db, prefer_learned=not args.baseline, nlu_device=args.device, domain=args.domain
    )
    if bundle.inventory is not None:
        bundle.inventory.check()  # a clear message now rather than half an answer
    result = bundle.ask(text, args.store, None if args.language == "auto" else args.language)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(result["answer"]["text"])
    return 0
