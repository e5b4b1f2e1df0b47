"""`python -m lab.nlu.corpus build --catalog build/catalog.jsonl --out build/corpus --seed 13`."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from lab.nlu.corpus.generate import DEFAULT_TEMPLATES, CorpusConfig, build_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.nlu.corpus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate train/dev/test JSONL, unlabelled.txt and stats.json")
    b.add_argument("--catalog", required=True, help="catalog JSONL (`assistant catalog --json`)")
    b.add_argument("--out", required=True, help="output folder (created)")
    b.add_argument(
        "--templates",
        default=str(DEFAULT_TEMPLATES),
        help="templates YAML, language -> intent -> templates (default: the retail pack's)",
    )
    b.add_argument("--seed", type=int, default=CorpusConfig.seed)
    b.add_argument(
        "--n", type=int, default=CorpusConfig.n_examples, help="labelled examples, all splits"
    )
    b.add_argument("--n-unlabelled", type=int, default=CorpusConfig.n_unlabelled)
    b.add_argument("--spanish-share", type=float, default=CorpusConfig.spanish_share)
    b.add_argument(
        "--doc", default=None, help="also write the Markdown statistics here (docs/corpus.md)"
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = CorpusConfig(
            seed=args.seed,
            n_examples=args.n,
            n_unlabelled=args.n_unlabelled,
            spanish_share=args.spanish_share,
        )
        t0 = time.perf_counter()
        stats = build_corpus(
            args.catalog,
            args.out,
            cfg,
            doc=args.doc,
            progress=not args.no_progress,
            templates=args.templates,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{s} {d['examples']}" for s, d in stats["splits"].items())
    print(
        f"wrote {args.out}: {sizes}, unlabelled {stats['unlabelled_lines']} ({time.perf_counter() - t0:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
