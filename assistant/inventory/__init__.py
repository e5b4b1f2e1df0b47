"""The store's catalog and inventory: seeded generator, SQLAlchemy schema, read API."""

from assistant.inventory.db import InventoryUnavailable, init_db
from assistant.inventory.queries import (
    Associate,
    Department,
    Inventory,
    ProductRecord,
    Shift,
    Store,
)

__all__ = [
    "Associate",
    "Department",
    "Inventory",
    "InventoryUnavailable",
    "ProductRecord",
    "Shift",
    "Store",
    "init_db",
]
