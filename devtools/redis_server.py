"""The local Redis server for ``make run``, stopped last: ``python -m devtools.redis_server [redis-server args]``.

When honcho stops the product (Ctrl-C, or one process ending) it sends SIGTERM to every process
group at once. A Redis server that quits at once leaves the RQ worker's warm shutdown without
Redis: its scheduler cannot release its locks and it cannot record its own end, and both print
Redis tracebacks. So Redis runs in a session of its own, out of reach of that signal, and this
wrapper stops it once its clients have disconnected (at most ``CLIENTS_WAIT`` seconds, inside
honcho's 5 s before SIGKILL).
"""
import ctypes
import signal
import subprocess
import sys
import time

from redis import Redis
from redis.exceptions import RedisError

#: How long to wait for the worker and the scheduler to disconnect before stopping Redis anyway.
CLIENTS_WAIT = 4.0
#: prctl(2): deliver a signal to the child when this wrapper dies (even by SIGKILL).
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: a killed wrapper may leave Redis running


def _port(args: list[str]) -> int:
    return int(args[args.index("--port") + 1]) if "--port" in args else 6379


def _other_clients(client: Redis) -> int:
    """Connections other than this one (the worker, its scheduler, the web app, the sweep scheduler)."""
    return len(client.client_list()) - 1


def main(args: list[str]) -> int:
    """Run redis-server with ``args`` until SIGTERM/SIGINT, then stop it once its clients are gone."""
    # umask 077: its dump (and an AOF) is this user's only: it holds every queued job (pickles).
    server = subprocess.Popen(["redis-server", *args], start_new_session=True, preexec_fn=_die_with_parent,
                              umask=0o077)
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopping.append(signum))
    while not stopping and server.poll() is None:
        time.sleep(0.1)
    if server.poll() is not None:
        return server.returncode
    client = Redis(port=_port(args), socket_timeout=1)
    deadline = time.monotonic() + CLIENTS_WAIT
    try:
        while time.monotonic() < deadline and _other_clients(client) > 0:
            time.sleep(0.1)
    except RedisError:
        pass
    finally:
        client.close()
    server.terminate()  # redis-server saves (if configured) and exits on SIGTERM
    return 0 if server.wait() in (0, -signal.SIGTERM) else server.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
