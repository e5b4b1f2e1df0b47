"""`assistant catalog [--store ID] --json`: the store's catalog, one product per line."""

from __future__ import annotations

import argparse
import json

from assistant.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "catalog", help="list the catalog with aisle, bay and stock for a store"
    )
    parser.add_argument("--store", default="1", help="store id (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--db", default=None, help="database URL (default: $RETAIL_ASSISTANT_DB or the SQLite file)"
    )
    parser.add_argument("--limit", type=int, default=None, help="print only the first N products")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from assistant.inventory import Inventory

    inventory = Inventory(args.db)
    if inventory.store(args.store) is None:
        known = ", ".join(sorted(inventory.stores()))
        raise UserError(f"unknown store {args.store!r}; known stores: {known}")
    rows = inventory.catalog_rows(args.store)[: args.limit]
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            where = f"aisle {row['aisle']} bay {row['bay']}" if row["aisle"] else "not carried"
            print(
                f"{row['sku']}  {row['name_en']:<60}  {row['department']:<22} {where:<16} on hand {row['on_hand']}"
            )
    return 0
