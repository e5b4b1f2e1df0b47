"""Inventory database schema (SQLAlchemy 2 Core), creation and seeding, read-only engines.

SQLite file by default (assistant.env.database_url()), PostgreSQL by URL
(postgresql+psycopg2://user@host:port/db). Every statement is built with SQLAlchemy
expressions, so values always travel as bound parameters.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import (
    Column,
    Date,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from tqdm import tqdm

from assistant.errors import UserError

log = logging.getLogger(__name__)
INSERT_CHUNK = 5000

metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))
stores = Table(
    "stores",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("city", String(64)),
    Column("region", String(16)),
    Column("country", String(2)),
    Column("language", String(2)),
    Column("lat", Float),
    Column("lon", Float),
)
departments = Table(
    "departments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name_en", String(64), nullable=False),
    Column("name_es", String(64), nullable=False),
    Column("aliases_en", Text),  # JSON list
    Column("aliases_es", Text),  # JSON list
)
products = Table(
    "products",
    metadata,
    Column("sku", String(16), primary_key=True),
    Column("line", String(96), nullable=False, index=True),
    Column("brand", String(64), nullable=False, index=True),
    Column("brand_origin", String(2)),
    Column("name_en", String(200), nullable=False),
    Column("name_es", String(200), nullable=False),
    Column("product_en", String(96)),
    Column("product_es", String(96)),
    Column("type_id", String(32)),
    Column("department_id", String(32), ForeignKey("departments.id"), nullable=False),
    Column("size", String(32)),
    Column("size_es", String(32)),
    Column("color", String(16)),
    Column("color_es", String(16)),
)
product_aliases = Table(
    "product_aliases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sku", String(16), ForeignKey("products.sku"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # brand | product | size | color
    Column("language", String(3), nullable=False),  # en | es | any
    Column("alias", String(128), nullable=False),
)
locations = Table(
    "locations",
    metadata,
    Column("store_id", String(16), ForeignKey("stores.id"), primary_key=True),
    Column("sku", String(16), ForeignKey("products.sku"), primary_key=True),
    Column("aisle", String(8), nullable=False),
    Column("bay", Integer, nullable=False),
)
stock = Table(
    "stock",
    metadata,
    Column("store_id", String(16), ForeignKey("stores.id"), primary_key=True),
    Column("sku", String(16), ForeignKey("products.sku"), primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("on_order", Integer, nullable=False),
)
sales = Table(
    "sales",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("store_id", String(16), ForeignKey("stores.id"), nullable=False),
    Column("sku", String(16), ForeignKey("products.sku"), nullable=False),
    Column("day", Date, nullable=False),
    Column("units", Integer, nullable=False),
    Index("ix_sales_store_day", "store_id", "day"),
)
associates = Table(
    "associates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("store_id", String(16), ForeignKey("stores.id"), nullable=False),
    Column("first_name", String(64), nullable=False),
    Column("last_name", String(64), nullable=False),
    Column("department_id", String(32), ForeignKey("departments.id")),
    Column("role_en", String(64)),
    Column("role_es", String(64)),
)
shifts = Table(
    "shifts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("associate_id", Integer, ForeignKey("associates.id"), nullable=False, index=True),
    Column("weekday", Integer, nullable=False),  # 0 = Monday, as datetime.date.weekday()
    Column("start_time", String(5), nullable=False),  # "HH:MM", local store time
    Column("end_time", String(5), nullable=False),
)

# parents first: the order rows are inserted in (and deleted in reverse)
SEED_TABLES = (
    "stores",
    "departments",
    "products",
    "product_aliases",
    "locations",
    "stock",
    "sales",
    "associates",
    "shifts",
)


class InventoryUnavailable(UserError):
    """The inventory database cannot be opened or queried (missing file, server down)."""

    exit_code = 3


def parse_url(url: str) -> URL:
    """`url` as a SQLAlchemy URL; InventoryUnavailable with an example when it is not one."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError) as error:
        raise InventoryUnavailable(
            f"{redact(url)!r} is not a database URL; give one such as "
            "sqlite:////path/to/inventory.sqlite or postgresql://user@host:5432/inventory "
            "(--db / --url, or $RETAIL_ASSISTANT_DB)"
        ) from error


def redact(url: str) -> str:
    """`url` without its password (a string that is not a URL: its first 80 characters, any
    password-looking part cut)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        text = str(url)[:80]
        return text.split("@")[-1] if "@" in text else text


_redact = redact


def open_engine(url: str, read_only: bool = True) -> Engine:
    """An engine on `url`; read-only where the backend allows it (SQLite file mode, PG session)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if read_only:
            if not path or path == ":memory:" or not Path(path).exists():
                raise InventoryUnavailable(
                    f"inventory database not found at {path}; run `assistant db init` "
                    "(or set RETAIL_ASSISTANT_DB to a database URL)"
                )
            # URI mode lets SQLite itself refuse writes
            resolved = Path(path).resolve()
            engine = create_engine(f"sqlite:///file:{resolved}?mode=ro&uri=true")
            _follow_file(engine, resolved)
            return engine
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict = {}
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 defaults to psycopg 3; the project ships psycopg2 (postgres extra)
            parsed = parsed.set(drivername="postgresql+psycopg2")
        if "connect_timeout" not in parsed.query:  # the URL may give its own
            connect_args["connect_timeout"] = 5
        if read_only:
            # A query that runs away ends server-side; an answer waits for no more.
            connect_args["options"] = (
                "-c default_transaction_read_only=on -c statement_timeout=5000"
            )
    try:
        return create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except ImportError as error:
        raise InventoryUnavailable(
            f"no database driver for {_redact(url)} ({error.name}); install it, e.g. "
            "`pip install -e '.[postgres]'`"
        ) from error


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _follow_file(engine: Engine, path: Path) -> None:
    """Pooled SQLite connections hold the file they opened: once it is replaced (a new
    `assistant db init`, a restored backup) they would go on reading the old one, or failing
    on it. Each connection remembers its file; one whose path now names another file is
    dropped at checkout and the pool opens the new file."""

    def on_connect(_dbapi_connection, record) -> None:
        record.info["file_id"] = _file_id(path)

    def on_checkout(_dbapi_connection, record, _proxy) -> None:
        if record.info.get("file_id") != _file_id(path):
            raise DisconnectionError(f"{path} was replaced")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "checkout", on_checkout)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def seeded_version(engine: Engine) -> str | None:
    """The catalog version the database holds, None when empty or unseeded."""
    try:
        with engine.connect() as conn:
            return conn.execute(
                select(meta.c.value).where(meta.c.key == "catalog_version")
            ).scalar_one_or_none()
    except (OperationalError, ProgrammingError):
        return None


def init_db(url: str, seed: int, force: bool = False, as_of=None, progress: bool = True) -> str:
    """Create the schema and seed it from the generated catalog; skip when already seeded.

    Returns "created", "reseeded" or "up to date".
    """
    from assistant.inventory.catalog import catalog_version, generate

    try:
        engine = open_engine(url, read_only=False)
        version = catalog_version(seed)
        current = seeded_version(engine)
        if current == version and not force:
            log.info("inventory %s already seeded (%s)", _redact(url), version)
            return "up to date"
        catalog = generate(seed, as_of=as_of)
        metadata.create_all(engine)
        with engine.begin() as conn:
            for name in reversed(SEED_TABLES):
                conn.execute(delete(metadata.tables[name]))
            conn.execute(delete(meta))
            rows_total = sum(len(getattr(catalog, n)) for n in SEED_TABLES)
            with tqdm(
                total=rows_total, desc="seeding inventory", unit="row", disable=not progress
            ) as bar:
                for name in SEED_TABLES:
                    rows = getattr(catalog, name)
                    table = metadata.tables[name]
                    columns = set(table.c.keys())
                    for i in range(0, len(rows), INSERT_CHUNK):
                        chunk = [
                            {k: v for k, v in r.items() if k in columns}
                            for r in rows[i : i + INSERT_CHUNK]
                        ]
                        conn.execute(table.insert(), chunk)
                        bar.update(len(chunk))
            conn.execute(
                meta.insert(),
                [
                    {"key": "catalog_version", "value": version},
                    {"key": "seed", "value": str(seed)},
                    {"key": "as_of", "value": catalog.as_of.isoformat()},
                ],
            )
        engine.dispose()
        return "created" if current is None else "reseeded"
    except InventoryUnavailable:
        raise
    except SQLAlchemyError as error:
        raise InventoryUnavailable(
            f"cannot create the inventory database at {_redact(url)}: {error.__class__.__name__}: "
            f"{str(error.orig if hasattr(error, 'orig') else error).strip().splitlines()[0]}; "
            "check the URL and that the server is running"
        ) from error
