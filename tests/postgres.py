"""A throwaway PostgreSQL cluster for the test session (Debian's ``postgresql`` package).

``initdb`` refuses to run as root, so when the tests run as root the cluster is created and
started as the ``postgres`` system user. It listens on loopback only, with fsync off.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time


def _binaries() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server is not installed (apt-get install postgresql)")
    return os.path.dirname(found[-1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


class Cluster:
    """Start with ``start()``; ``url`` is a SQLAlchemy URL; ``stop()`` removes everything."""

    def __init__(self, port: int):
        self.port = port
        self.bin = _binaries()
        self.dir = tempfile.mkdtemp(prefix="pgtest-")
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/booking_test"

    def _run(self, *args: str) -> None:
        subprocess.run(_as_postgres(list(args)), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> "Cluster":
        self._run(f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off " \
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"),
                  "-w", "start")
        deadline = time.monotonic() + 20
        while subprocess.run([f"{self.bin}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                             stdout=subprocess.DEVNULL).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)
        self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "booking_test")
        return self

    def stop(self) -> None:
        subprocess.run(_as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)
