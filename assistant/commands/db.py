"""`assistant db init [--url URL] [--seed N] [--force]`: create and seed the inventory database."""

from __future__ import annotations

import argparse
import datetime as dt

from assistant.env import database_url
from assistant.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="create and seed the inventory database")
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    init = sub.add_parser(
        "init", help="create the schema and seed it from the catalog (idempotent)"
    )
    init.add_argument(
        "--url",
        default=None,
        help="SQLAlchemy URL (default: $RETAIL_ASSISTANT_DB or a SQLite file in the cache)",
    )
    init.add_argument(
        "--seed", type=int, default=None, help="catalog seed (default: %(default)s -> 1234)"
    )
    init.add_argument(
        "--force", action="store_true", help="reseed even when the same catalog is already there"
    )
    init.add_argument(
        "--as-of", default=None, help="last day of sales history, YYYY-MM-DD (default: today)"
    )
    status = sub.add_parser("status", help="print the catalog version the database holds")
    status.add_argument("--url", default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.inventory import Inventory, init_db
    from assistant.inventory.catalog import DEFAULT_SEED

    url = args.url or database_url()
    if args.db_command == "status":
        inventory = Inventory(url)
        print(
            f"{inventory.redacted_url}: catalog {inventory.check()}, sales through {inventory.as_of()}"
        )
        return 0
    as_of = None
    if args.as_of:
        try:
            as_of = dt.date.fromisoformat(args.as_of)
        except ValueError as error:
            raise UserError(f"--as-of {args.as_of!r} is not a date; use YYYY-MM-DD") from error
    seed = DEFAULT_SEED if args.seed is None else args.seed
    outcome = init_db(url, seed, force=args.force, as_of=as_of)
    inventory = Inventory(url)
    print(
        f"inventory {outcome}: {inventory.redacted_url} (catalog {inventory.check()}, {len(inventory.products())} products, {len(inventory.stores())} stores)"
    )
    inventory.close()
    return 0
