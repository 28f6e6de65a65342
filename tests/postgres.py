"""A throwaway PostgreSQL server for the multi-worker tests: Debian's postgresql binaries,
a temporary data directory, 127.0.0.1 on a free port, started and stopped by the fixture."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PASSWORD = "s3cret-pw"  # trust auth ignores it; it is here to prove it is never printed


def find_bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else shutil.which(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres account when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class Server:
    def __init__(self):
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        # Its own folder under /tmp: pytest's tmp tree is private to root, and the server runs
        # as the postgres account.
        self.root, self.port = Path(tempfile.mkdtemp(prefix="maitsearch-pg-")), free_port()
        self.data, self.socket_dir = self.root / "data", self.root / "sock"

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl) and (os.geteuid() != 0 or shutil.which("runuser") is not None)

    def start(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        subprocess.run(as_postgres_user([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True)
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=50"
        subprocess.run(as_postgres_user([self.pg_ctl, "-D", str(self.data), "-o", options, "-w", "-t", "60",
                                         "-l", str(self.root / "log"), "start"]), check=True, capture_output=True)
        import psycopg

        deadline = time.time() + 30
        while True:
            try:
                connection = psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                             autocommit=True)
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        with connection:
            connection.execute("CREATE DATABASE maitsearch")

    def url(self, database: str = "maitsearch") -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        subprocess.run(as_postgres_user([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
