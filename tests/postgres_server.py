"""A throw-away PostgreSQL server for the tests: ``initdb`` in a temporary folder, ``pg_ctl`` on a free port.

The binaries come from PATH or Debian's ``/usr/lib/postgresql/<version>/bin`` (``.ci/run`` installs the
``postgresql`` package where they are missing). PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` (or ``nobody``) user. Local socket connections are trusted; TCP
connections need the password, so a test can check that the password never lands in a file.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "find_binaries", "start_server"]

USER = "automed"
PASSWORD = "s3cret-Pw-4-tests"


@dataclass(frozen=True)
class PostgresServer:
    folder: Path
    port: int
    bin_dir: Path
    run_as: str | None

    def url(self, database: str = "automed", password: bool = False) -> str:
        """A SQLAlchemy URL of ``database`` over TCP (with the password in it if ``password``)."""
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        _run([str(self.bin_dir / "createdb"), "-h", str(self.folder), "-p", str(self.port), "-U", USER, name],
             self.run_as)

    def stop(self) -> None:
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
             self.run_as, check=False)


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def start_server(folder: Path) -> PostgresServer:
    """Initialise and start a server in ``folder`` (created); raises RuntimeError where that is impossible."""
    bin_dir = find_binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql")
    run_as = None
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        run_as = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
        if run_as is None:
            raise RuntimeError("running as root, and no 'postgres' or 'nobody' user to run the server as")
        os.chmod(folder, 0o777)
        shutil.chown(folder, user=run_as)
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    os.chmod(pwfile, 0o644)
    _run([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER, "--pwfile", str(pwfile),
          "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"], run_as)
    pwfile.unlink()
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
    _run([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-o", options, "-l", str(folder / "server.log"),
          "-w", "-t", "60", "start"], run_as)
    server = PostgresServer(folder, port, bin_dir, run_as)
    server.create_database("automed")
    return server


def _run(command: list[str], run_as: str | None, check: bool = True) -> None:
    if run_as is not None:
        command = ["runuser", "-u", run_as, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {(done.stderr or done.stdout)[-1000:]}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
