"""Start and stop a throw-away PostgreSQL 15 server for the tests.

The server is Debian's ``postgresql-15`` package (installed with apt when its binaries are
missing). It runs as the ``postgres`` system user (PostgreSQL refuses to run as root), with
its data directory and unix socket under a private temporary directory, listening on
127.0.0.1 only, on a free port, with trust authentication. :meth:`PgServer.stop` stops only
the postmaster this module started (by its PID).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_VERSION = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_USER = "postgres"
APT_PACKAGES = (f"postgresql-{PG_VERSION}", "postgresql")


class PgUnavailable(RuntimeError):
    """PostgreSQL binaries are missing and cannot be installed here (no root / no apt)."""


def _binaries_present() -> bool:
    return all((PG_BIN / b).is_file() for b in ("initdb", "pg_ctl", "postgres"))


def ensure_binaries(timeout_s: float = 600.0) -> Path:
    """Return the PostgreSQL 15 ``bin`` folder, installing the package with apt if needed.

    Raises
    ------
    PgUnavailable
        When the binaries are absent and apt cannot be used (not root, no apt-get).
    subprocess.CalledProcessError
        When apt is usable but the installation fails (a real error, not a skip).
    """
    if _binaries_present():
        return PG_BIN
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PgUnavailable(
            f"PostgreSQL {PG_VERSION} binaries not found in {PG_BIN} and apt-get cannot be "
            "used (needs root and apt-get): install postgresql-15 to run this test"
        )
    # Debian's package would create (and start) a default cluster on port 5432: not wanted,
    # the tests initdb their own. Our conffile is kept by --force-confold.
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("# tests/pg_server.py: no default cluster\ncreate_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=timeout_s)
    dpkg = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
    for package in APT_PACKAGES:  # postgresql-15 on bookworm; the meta package otherwise
        done = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *dpkg, package],
            env=env,
            timeout=timeout_s,
        )
        if done.returncode == 0 and _binaries_present():
            return PG_BIN
    # apt works but gave no server: a real failure (CI must run the test), not a skip.
    raise RuntimeError(f"apt installed no PostgreSQL {PG_VERSION} binaries in {PG_BIN}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> tuple[str | None, int, int]:
    """(user to run as, uid, gid): ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/bash", PG_USER],
            check=True,
        )
        entry = pwd.getpwnam(PG_USER)
    return PG_USER, entry.pw_uid, entry.pw_gid


@dataclass
class PgServer:
    """One PostgreSQL server started by :meth:`start` in a private temporary directory."""

    bin_dir: Path = PG_BIN
    port: int = 0
    base_dir: Path | None = None
    pid: int | None = None
    run_as: str | None = None
    superuser: str = PG_USER
    log: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "socket"

    @property
    def log_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "log"

    def _run(self, args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary as the server user."""
        cmd = ["runuser", "-u", self.run_as, "--", *args] if self.run_as else args
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        self.log.append(f"$ {' '.join(args)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def start(self, timeout_s: float = 60.0) -> PgServer:
        """initdb a fresh cluster (trust auth, 127.0.0.1 only) and start it on a free port.

        On failure whatever was started is stopped and the server log is in the error; a
        free port taken by someone else in between is retried (twice) with another one."""
        fixed_port = self.port
        for attempt in range(3):
            try:
                return self._start(timeout_s)
            except Exception as exc:
                server_log = ""
                if self.base_dir is not None and self.log_file.is_file():
                    server_log = self.log_file.read_text(errors="replace")[-4000:]
                self.stop()
                self.port = fixed_port
                if attempt < 2 and not fixed_port and "could not bind" in server_log:
                    continue
                raise RuntimeError(f"PostgreSQL did not start: {exc}\n{server_log}") from exc
        raise AssertionError("unreachable")

    def _start(self, timeout_s: float) -> PgServer:
        self.run_as, uid, gid = _server_user()
        self.superuser = self.run_as or pwd.getpwuid(os.getuid()).pw_name
        self.base_dir = Path(tempfile.mkdtemp(prefix="lifecycle-pg-"))
        os.chmod(self.base_dir, 0o755)  # traversable by the server user
        for d in (self.data_dir, self.socket_dir, self.log_dir):
            d.mkdir(mode=0o700)
            os.chown(d, uid, gid)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        # Only TCP on 127.0.0.1 (host) and the private socket (local) are accepted.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        os.chown(self.data_dir / "pg_hba.conf", uid, gid)
        self.port = self.port or free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.socket_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c timezone=UTC"
        )
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout_s)),
            ],
            timeout=timeout_s + 10,
        )
        self.pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return self

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq connection string over TCP."""
        return f"host=127.0.0.1 port={self.port} user={self.superuser} dbname={dbname}"

    def create_database(self, name: str) -> None:
        """CREATE DATABASE ``name`` (through psycopg2, autocommit)."""
        import psycopg2

        con = psycopg2.connect(self.dsn())
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'create database "{name}"')
        finally:
            con.close()

    def _alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server this object started (fast shutdown, then SIGKILL of its PID)
        and remove its directory. Never touches any other server."""
        if self.base_dir is None:
            return
        pid_file = self.data_dir / "postmaster.pid"
        if self.pid is None and pid_file.is_file():  # started, but start() did not finish
            self.pid = int(pid_file.read_text().splitlines()[0])
        if self._alive():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"],
                    timeout=timeout_s,
                )
            deadline = time.monotonic() + timeout_s
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._alive():
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
