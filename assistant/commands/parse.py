"""`assistant parse [TEXT...] [--json]`: intent and entity spans for each query (DESIGN.md).

With no TEXT, one query per line is read from standard input. Uses the distilled ONNX
student (nlu.runtime); falls back to the baseline rule parser, with a warning, when no
student is installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from assistant.domain import DOMAIN_HELP
from assistant.errors import UserError, check_text

log = logging.getLogger(__name__)
BATCH = 32  # queries per forward pass when reading a stream


def register(subparsers) -> None:
    p = subparsers.add_parser("parse", help="intent + entities of text queries (EN/ES)")
    p.add_argument("text", nargs="*", help="queries (default: one per line on stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per query")
    p.add_argument("--language", choices=("auto", "en", "es"), default="auto")
    p.add_argument(
        "--precision", choices=("auto", "int8", "fp32"), default="auto", help="student ONNX file"
    )
    p.add_argument("--model", help="student model directory (default: the domain's student)")
    p.add_argument("--domain", default="retail", help=DOMAIN_HELP + " (default: %(default)s)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the student runs (auto: CUDA when onnxruntime-gpu has one; default %(default)s)",
    )
    p.set_defaults(func=run)


def load_parser(
    model: str | None = None, precision: str = "auto", device: str = "auto", domain: str = "retail"
):
    """The ONNX student (`model`, else the domain's), else the retail baseline parser
    (warning on stderr)."""
    from assistant.domain import load_domain  # noqa: PLC0415
    from assistant.pipeline import load_pack_parser  # noqa: PLC0415
    from nlu.runtime import OnnxParser, load_default_parser  # noqa: PLC0415

    pack = load_domain(domain)  # a DomainError is a UserError: printed, no traceback
    if not model and pack.student is not None:
        return load_pack_parser(pack, precision, device)

    if model:
        try:
            return OnnxParser(model, precision, device=device)
        except (FileNotFoundError, ValueError) as error:
            raise UserError(
                f"cannot load NLU model {model}: {error}; pass a directory written by lab.nlu.export"
            ) from error
    parser = load_default_parser(precision, device=device)
    if parser is not None:
        return parser
    print(
        "assistant parse: warning: no NLU student installed (nlu/models/student); "
        "using the baseline rule parser",
        file=sys.stderr,
    )
    from assistant.inventory import Inventory  # noqa: PLC0415
    from assistant.pipeline import load_parser as load_assistant_parser  # noqa: PLC0415

    # the same gazetteer baseline `assistant ask` falls back to (the curated lists when the
    # database is down)
    return load_assistant_parser(Inventory(), prefer_learned=False)


def _format(result) -> str:
    ents = " ".join(f"[{e.text}]{e.label}" for e in result.entities)
    return f"{result.intent} ({result.intent_score:.2f}, {result.language})  {ents}".rstrip()


def run(args: argparse.Namespace) -> int:
    parser = load_parser(args.model, args.precision, args.device, args.domain)
    language = None if args.language == "auto" else args.language
    texts = [check_text(t, f"TEXT {t.encode('utf-8', 'replace')[:40]!r}") for t in args.text]
    pending: list[str] = []
    skipped = 0

    def flush() -> None:
        for r in parser.parse_batch(pending, [language] * len(pending)):
            print(
                json.dumps(r.to_dict(), ensure_ascii=False) if args.json else _format(r), flush=True
            )
        pending.clear()

    for number, text in enumerate(texts or _stdin_lines(), 1):
        if text is None:  # a line that is not UTF-8: said on stderr, the others go on
            print(
                f"assistant parse: error: line {number} of standard input is not UTF-8 text; "
                "skipped",
                file=sys.stderr,
            )
            skipped += 1
            continue
        if not text.strip():
            continue
        pending.append(text)
        if len(pending) >= BATCH or not args.text:  # stdin: answer each line as it comes
            flush()
    if pending:
        flush()
    return 1 if skipped else 0


def _stdin_lines():
    """Lines of standard input, None for one that is not UTF-8 (instead of a traceback)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream already (tests, embedding)
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    for raw in stream:
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield None
