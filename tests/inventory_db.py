"""Inventory databases for tests: a seeded SQLite file and a seeded PostgreSQL database.

PostgreSQL comes from Debian's package: when $RETAIL_ASSISTANT_TEST_PG_URL is not set, a
throw-away cluster is made with initdb and started with pg_ctl on a free local port in a
temporary directory (as the `postgres` user when running as root, since PostgreSQL refuses
to run as root). Tests using it skip cleanly only when the binaries are absent.
Import the fixtures into a test module: `from inventory_db import inventory_url  # noqa: F401`.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SEED = 1234
AS_OF = dt.date(2026, 1, 15)  # a Thursday; fixed so that period answers are reproducible


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PostgresCluster:
    """initdb + pg_ctl start/stop of a private cluster; `url` once started."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="retail-pg-"))
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                self.user = None
            if self.user is None:
                raise RuntimeError(
                    "running as root and there is no `postgres` user to run PostgreSQL"
                )
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/inventory"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=self.dir)

    def start(self) -> None:
        data = self.dir / "data"
        self._run(
            "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )
        # A free port can be taken by another process before PostgreSQL binds it: try others.
        for attempt in range(3):
            options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "start",
                )
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise
                self.port = _free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/inventory"
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "inventory"
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    from assistant.inventory import init_db

    url = f"sqlite:///{tmp_path_factory.mktemp('inventory') / 'inventory.sqlite'}"
    init_db(url, SEED, as_of=AS_OF, progress=False)
    return url


@pytest.fixture(scope="session")
def postgres_url():
    from assistant.inventory import init_db

    url = os.environ.get("RETAIL_ASSISTANT_TEST_PG_URL")
    cluster = None
    if not url:
        bindir = _pg_bin()
        if bindir is None:
            pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
        cluster = PostgresCluster(bindir)
        cluster.start()
        url = cluster.url
    try:
        init_db(url, SEED, as_of=AS_OF, progress=False, force=True)
        yield url
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def inventory_url(request) -> str:
    """The same seeded catalog on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
