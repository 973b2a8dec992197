"""Host page latency under load: a large host's dashboard, busiest service page and Zoom settings.

    .venv/bin/python bench/dashboard_latency.py                  # 300 services, 3,000 slots, 30,000 bookings
    .venv/bin/python bench/dashboard_latency.py --scale 0.1 --requests 500
    .venv/bin/python bench/dashboard_latency.py --database-url postgresql+psycopg://…/empty_db

It seeds two hosts with bulk inserts (never through the web) into a temporary SQLite database
migrated with the real migrations (or an empty database given with ``--database-url``): a
large one (``--scale`` × 300 services, 3,000 slots, 30,000 bookings, with their emails, Zoom
meetings and a Zoom link) and one 10× smaller. It starts its own redis-server and the app
under gunicorn (``gunicorn --workers 2 wsgi:app``, configured through the environment, as the
production Procfile does), logs in as each host, and loads four pages with ``--clients``
concurrent clients on loopback, each page for ``--requests`` requests or ``--duration`` s,
whichever comes first:

- ``/dashboard``: the 10 next slots with their first 5 guests each, and how many more;
- ``/services/<id>``: the service whose slot is the fullest (1,000 guests × scale, the
  largest capacity a service may have): the first page of its upcoming slots, each with its
  seats and Zoom meeting;
- ``/slots/<id>``: that fullest slot's page, with the first page of its guests (50) and their
  email states;
- ``/settings/zoom``: the link, the long services on a Basic plan and the bookings made
  before linking (the first 20 of each, and how many).

It prints p50/p95/max per page, and the SQL statements each page runs for each host (counted
in this process on one request, with a ``before_cursor_execute`` listener): they must be
equal for both hosts, or a page runs a query per row. It never asserts timings (a shared
2-core box varies by ±25 %).
"""
import argparse
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import app` from anywhere
sys.path.insert(0, str(ROOT / "bench"))  # the shared helpers of outbox_delivery.py

import requests  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import event, func, insert, select, text  # noqa: E402

from app import clock, create_app, crypto  # noqa: E402
from app.auth import accounts  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, MeetingStatus, Service,  # noqa: E402
                        ServiceKind, Slot, SlotStatus, Venue, ZoomConnection, ZoomMeeting)
from app.models.zoom import PLAN_BASIC  # noqa: E402
from config import Config  # noqa: E402
from outbox_delivery import (Processes, children, free_port, percentile, run_and_report, start_redis,  # noqa: E402
                             wait_for)

#: The issue's target, per page, with 16 clients on this 2-core machine.
TARGET_P95_MS = 50.0
#: The seeded size at ``--scale 1``.
SERVICES, SLOTS, BOOKINGS = 300, 3000, 30_000
#: The fullest slot: the largest capacity the service form accepts, × scale (at most that).
BUSY_SLOT = 1000
#: One booking in this many of the upcoming Zoom ones was made before the host linked Zoom.
BEFORE_LINK_EVERY = 100
PAGES = ("dashboard", "busy service", "busy slot", "zoom settings")
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


# --- seeding -------------------------------------------------------------------------------------

@dataclass
class SeededHost:
    label: str
    email: str
    password: str
    busy_service_id: int
    busy_slot_id: int
    counts: dict

    def urls(self) -> dict[str, str]:
        """Page label → path."""
        return {"dashboard": "/dashboard", "busy service": f"/services/{self.busy_service_id}",
                "busy slot": f"/slots/{self.busy_slot_id}", "zoom settings": "/settings/zoom"}


def _next_id(model) -> int:
    return (db.session.scalar(select(func.max(model.id))) or 0) + 1


def _bulk(model, rows: list[dict], chunk: int = 5000) -> None:
    for start in range(0, len(rows), chunk):
        db.session.execute(insert(model), rows[start:start + chunk])


def seed_host(label: str, scale: float) -> SeededHost:
    """One host with ``scale`` × the issue's size, in bulk inserts; commits.

    Slots are 9 days apart from 30 days ago on (4 past, 6 to come per service); guests book 1–20
    days ahead; one slot in 20 is cancelled with its bookings; every Zoom slot with guests has an
    issued meeting; every booking has its confirmation email (sent) and, for Zoom, its URL email
    (sent, or due 24 h before the start).
    """
    n_services = max(round(SERVICES * scale), 1)
    n_slots = max(round(SLOTS * scale), n_services)
    n_bookings = max(round(BOOKINGS * scale), n_slots)
    busy_size = min(max(round(BUSY_SLOT * scale), 1), BUSY_SLOT)
    now = clock.now().replace(microsecond=0)
    password = secrets.token_urlsafe(12)
    host = accounts.create_user(f"{label}@bench.test", f"ベンチ {label}", password)
    linked_at = now - timedelta(days=40)
    db.session.add(ZoomConnection(
        host_id=host.id, zoom_user_id=f"bench-{label}", zoom_email=f"{label}@zoom.test", plan_type=PLAN_BASIC,
        access_token_enc=crypto.encrypt("bench-access"), refresh_token_enc=crypto.encrypt("bench-refresh"),
        access_expires_at=now + timedelta(hours=1), linked_at=linked_at, applies_from=linked_at))
    db.session.flush()

    first = _next_id(Service)
    services = []
    for i in range(n_services):
        zoom = i % 3 != 2
        busy = i == 0
        services.append({
            "id": first + i, "host_id": host.id, "public_id": secrets.token_urlsafe(12),
            "kind": ServiceKind.ONLINE if zoom else ServiceKind.CLASS_EVENT,  # Zoom is for online services only
            "title": f"サービス {i + 1}" + ("（大人数クラス）" if busy else ""), "description": "",
            "duration_minutes": (30, 45, 60, 90)[i % 4], "capacity": BUSY_SLOT if busy else 20,
            "venue": Venue.ZOOM if zoom else Venue.IN_PERSON, "host_notes": "当日はよろしくお願いします。",
            "created_at": now - timedelta(days=120)})
    _bulk(Service, services)

    per_service = n_slots // n_services
    first = _next_id(Slot)
    slots = []
    for k in range(n_slots):
        i, j = k % n_services, k // n_services
        service = services[i]
        starts_at = now - timedelta(days=30) + timedelta(days=9 * (j % 10), hours=i % 24, minutes=i // 24 + j // 10)
        slots.append({
            "id": first + k, "service_id": service["id"], "starts_at": starts_at, "capacity": service["capacity"],
            "booked_count": 0, "status": SlotStatus.CANCELLED if k % 20 == 7 else SlotStatus.OPEN,
            "created_at": now - timedelta(days=100)})
    # The fullest slot: the busy service's last one (far enough ahead not to be on the dashboard).
    busy_slot = max((s for s in slots if s["service_id"] == services[0]["id"] and s["status"] == SlotStatus.OPEN),
                    key=lambda s: s["starts_at"])
    others = [s for s in slots if s is not busy_slot]

    first = _next_id(Booking)
    bookings = []
    for n in range(n_bookings):
        slot = busy_slot if n < busy_size else others[(n - busy_size) % len(others)]
        cancelled = slot["status"] == SlotStatus.CANCELLED
        created_at = min(slot["starts_at"] - timedelta(days=1 + n % 20, minutes=n % 60), now - timedelta(minutes=5))
        bookings.append({
            "id": first + n, "slot_id": slot["id"], "guest_name": f"予約者 {n + 1}",
            "guest_email": f"guest{n + 1}@{label}.bench.test",
            "mailbox": f"guest{n + 1}@{label}.bench.test",
            "status": BookingStatus.CANCELLED if cancelled else BookingStatus.CONFIRMED,
            "cancel_token": secrets.token_urlsafe(24), "join_token": secrets.token_urlsafe(24),
            "created_at": created_at, "cancelled_at": created_at + timedelta(hours=1) if cancelled else None})
        if not cancelled:
            slot["booked_count"] += 1
    by_slot = {s["id"]: s for s in slots}
    venue = {s["id"]: s["venue"] for s in services}
    upcoming_zoom = [b for b in bookings if b["status"] == BookingStatus.CONFIRMED
                     and by_slot[b["slot_id"]]["starts_at"] > now
                     and venue[by_slot[b["slot_id"]]["service_id"]] == Venue.ZOOM]
    for b in upcoming_zoom[::BEFORE_LINK_EVERY]:
        b["created_at"] = linked_at - timedelta(days=1)  # booked before the link: not covered
    for b in bookings:
        slot = by_slot[b["slot_id"]]
        slot["first_booked_at"] = min(slot.get("first_booked_at") or b["created_at"], b["created_at"])
    _bulk(Slot, [{"first_booked_at": None, **s} for s in slots])
    _bulk(Booking, bookings)

    first = _next_id(Delivery)
    deliveries = []
    for b in bookings:
        slot = by_slot[b["slot_id"]]
        common = {"to_email": b["guest_email"], "to_name": b["guest_name"], "locale": "ja", "host_id": host.id,
                  "booking_id": b["id"], "slot_id": slot["id"], "payload": {}, "attempts": 1, "last_error": ""}
        deliveries.append({**common, "id": first + len(deliveries), "kind": "booking_confirmation",
                           "status": DeliveryStatus.SENT, "due_at": b["created_at"],
                           "sent_at": b["created_at"] + timedelta(seconds=3), "created_at": b["created_at"],
                           "dedupe_key": f"confirmation:{b['id']}"})
        if venue[slot["service_id"]] == Venue.ZOOM and b["created_at"] >= linked_at:
            due = max(slot["starts_at"] - timedelta(hours=24), b["created_at"])
            status = (DeliveryStatus.CANCELLED if b["status"] == BookingStatus.CANCELLED
                      else DeliveryStatus.SENT if due <= now else DeliveryStatus.PENDING)
            deliveries.append({**common, "id": first + len(deliveries), "kind": "zoom_url", "status": status,
                               "due_at": due, "sent_at": due if status == DeliveryStatus.SENT else None,
                               "created_at": b["created_at"], "dedupe_key": f"zoom_url:{b['id']}",
                               "attempts": 1 if status == DeliveryStatus.SENT else 0})
    _bulk(Delivery, deliveries)

    first = _next_id(ZoomMeeting)
    meetings = []
    for slot in slots:
        if venue[slot["service_id"]] != Venue.ZOOM or not slot["booked_count"]:
            continue
        n = len(meetings)
        meetings.append({
            "id": first + n, "slot_id": slot["id"], "host_id": host.id, "status": MeetingStatus.ISSUED,
            "zoom_meeting_id": 80_000_000_000 + first + n, "join_url": f"https://zoom.us/j/{80_000_000_000 + first + n}",
            "password": "bench", "topic": "bench", "issue_key": secrets.token_hex(16), "attempts": 1,
            "legacy": False, "issued_at": slot["starts_at"] - timedelta(days=7), "last_error": "",
            "created_at": slot["starts_at"] - timedelta(days=7)})
    _bulk(ZoomMeeting, meetings)
    db.session.commit()
    return SeededHost(label=label, email=host.email, password=password, busy_service_id=services[0]["id"],
                      busy_slot_id=busy_slot["id"], counts={
        "services": n_services, "slots": n_slots, "bookings": n_bookings, "busy slot": busy_size,
        "deliveries": len(deliveries), "meetings": len(meetings), "before link": len(upcoming_zoom[::BEFORE_LINK_EVERY]),
        "slots per service": per_service})


def fix_sequences() -> None:
    """PostgreSQL: the ids were given explicitly, so move each sequence past them; then vacuum and
    gather the planner's statistics, as autovacuum keeps a live database. Left to autovacuum, the
    ~80,000 rows just inserted get vacuumed while the first pages are being measured."""
    if db.engine.dialect.name != "postgresql":
        return
    for model in (Service, Slot, Booking, Delivery, ZoomMeeting):
        table = model.__tablename__
        db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"(SELECT max(id) FROM {table}))"))
    db.session.commit()
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


# --- in-process: SQL statements per page ------------------------------------------------------

def _login_test_client(app, host: SeededHost):
    client = app.test_client()
    token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"email": host.email, "password": host.password, "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError(f"in-process login as {host.email} failed ({response.status_code})")
    return client


def count_statements(app, host: SeededHost, repeat: int = 10) -> dict[str, tuple[int, float]]:
    """Page → (SQL statements of one request, median in-process time of ``repeat`` serial requests, ms)."""
    client = _login_test_client(app, host)
    result = {}
    for page, url in host.urls().items():
        client.get(url)  # warm the templates
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            response = client.get(url)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code} in process")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        result[page] = (len(statements), sorted(times)[len(times) // 2])
    return result


# --- over HTTP: gunicorn under load ----------------------------------------------------------

def login_cookies(base_url: str, host: SeededHost) -> requests.cookies.RequestsCookieJar:
    """Log in through the login page (CSRF token from the form); return the session cookies.

    They are the cookies a browser holds after it followed the login's redirect: the first page
    after login puts a new CSRF token in the session (login starts a new session) and sends
    the cookie again. ``ab`` never stores cookies, so with the login's own cookie every request
    would make a CSRF token and sign a new session cookie, which no browser makes a page do.
    """
    with requests.Session() as session:
        page = session.get(f"{base_url}/login", timeout=30)
        token = _CSRF.search(page.text).group(1)
        response = session.post(f"{base_url}/login", allow_redirects=False, timeout=30,
                                data={"email": host.email, "password": host.password, "csrf_token": token})
        if response.status_code != 302 or "/login" in response.headers.get("Location", ""):
            raise RuntimeError(f"login as {host.email} failed ({response.status_code})")
        landing = session.get(f"{base_url}/dashboard", allow_redirects=False, timeout=30)
        if landing.status_code != 200:
            raise RuntimeError(f"/dashboard after login as {host.email} answered {landing.status_code}")
        return session.cookies


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    return total / os.sysconf("SC_CLK_TCK")


def database_pids(database_url: str) -> list[int]:
    """PostgreSQL on this machine: the pids of the backends serving this database's clients.

    Their CPU is the database's share of each request (it runs on the same two cores). Empty on
    SQLite, which runs inside the gunicorn workers, and for a server whose processes are not here.
    """
    if not database_url.startswith("postgresql"):
        return []
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            pids = connection.scalars(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")).all()
    finally:
        engine.dispose()
    return [pid for pid in pids if Path(f"/proc/{pid}/stat").exists()]


def load(url: str, cookies, clients: int, total: int, duration: float, server_pids: list[int],
         database: list[int]) -> dict:
    """``clients`` threads GET ``url`` until ``total`` requests or ``duration`` s; latencies in ms.

    Also the CPU time the server processes and this process spent per request.
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = 0
    deadline = time.monotonic() + duration

    def client() -> None:
        nonlocal issued
        with requests.Session() as session:
            session.cookies.update(cookies)
            while True:
                with lock:
                    if issued >= total or time.monotonic() >= deadline:
                        return
                    issued += 1
                started = time.perf_counter()
                try:
                    response = session.get(url, allow_redirects=False, timeout=60)
                    elapsed = (time.perf_counter() - started) * 1000
                except requests.RequestException as exc:
                    errors.append(type(exc).__name__)
                    continue
                if response.status_code != 200:
                    errors.append(str(response.status_code))
                    continue
                latencies.append(elapsed)  # list.append is atomic under the GIL

    started, server_cpu, own_cpu = time.perf_counter(), _cpu_seconds(server_pids), time.process_time()
    database_cpu = _cpu_seconds(database)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    server_cpu, own_cpu = _cpu_seconds(server_pids) - server_cpu, time.process_time() - own_cpu
    database_cpu = _cpu_seconds(database) - database_cpu
    if not latencies:
        raise RuntimeError(f"{url}: no successful request ({len(errors)} errors: {sorted(set(errors))})")
    return {"n": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "max": max(latencies),
            "rate": len(latencies) / wall, "server_cpu": server_cpu * 1000 / (len(latencies) + len(errors)),
            "database_cpu": database_cpu * 1000 / (len(latencies) + len(errors)),
            "client_cpu": own_cpu * 1000 / (len(latencies) + len(errors)), "bytes": len(requests.get(url, cookies=cookies, timeout=60).content)}


def load_ab(url: str, cookies, clients: int, total: int, duration: float, server_pids: list[int],
            database: list[int]) -> dict:
    """The same measure as ``load``, with ApacheBench (``ab``, apt ``apache2-utils``) as the clients.

    ``ab`` is C: about a tenth of the CPU per request of 16 Python threads, and no GIL between a
    response's arrival and its timestamp, so the server gets the CPU the clients would take and
    the latencies are the server's. Percentiles from its CSV output (one row per percent).
    """
    csv_path = Path(tempfile.mkstemp(suffix=".csv")[1])
    cookie = "; ".join(f"{c.name}={c.value}" for c in cookies)
    before, server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN), _cpu_seconds(server_pids)
    database_cpu = _cpu_seconds(database)
    try:
        out = subprocess.run(["ab", "-q", "-t", str(int(duration)), "-n", str(total), "-c", str(clients),
                              "-H", f"Cookie: {cookie}", "-e", str(csv_path),
                              # The session is bound to the browser that logged in (strong protection).
                              "-H", f"User-Agent: {requests.utils.default_user_agent()}", url],
                             capture_output=True, text=True, check=True).stdout
        percent = dict(line.split(",") for line in csv_path.read_text().splitlines()[1:])
    finally:
        csv_path.unlink(missing_ok=True)
    after, server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN), _cpu_seconds(server_pids) - server_cpu
    database_cpu = _cpu_seconds(database) - database_cpu

    def field(name: str) -> float:
        found = re.search(rf"^{name}:\s+([0-9.]+)", out, re.M)
        return float(found.group(1)) if found else 0.0

    done, failed, non_2xx = int(field("Complete requests")), int(field("Failed requests")), int(field("Non-2xx responses"))
    client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"n": done - failed - non_2xx, "errors": failed + non_2xx,
            "error_kinds": ["failed"] * bool(failed) + ["non-2xx"] * bool(non_2xx),
            "p50": float(percent["50"]), "p95": float(percent["95"]), "max": float(percent["100"]),
            "rate": field("Requests per second"), "server_cpu": server_cpu * 1000 / max(done, 1),
            "database_cpu": database_cpu * 1000 / max(done, 1),
            "client_cpu": client_cpu * 1000 / max(done, 1),
            "bytes": len(requests.get(url, cookies=cookies, timeout=60).content)}


# --- the run -------------------------------------------------------------------------------------



def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def run(args) -> dict:
    """Seed, start redis and gunicorn, measure; everything is stopped on return."""
    load_before = os.getloadavg()  # other work on the box skews every figure: say how much there was
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    procs = Processes(workdir)
    try:
        redis_url = start_redis(procs, workdir)
        redis = Redis.from_url(redis_url)
        redis.close()

        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        secret_key = secrets.token_urlsafe(32)
        app = create_app(Config, SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url, SECRET_KEY=secret_key)
        seeded_at = time.monotonic()
        with app.app_context():
            upgrade()  # the real migrations
            hosts = [seed_host("large", args.scale), seed_host("small", args.scale / 10)]
            fix_sequences()
            db.session.remove()
            db.engine.dispose()
        print(f"seeded in {time.monotonic() - seeded_at:.1f} s: "
              + "; ".join(f"{h.label}: " + ", ".join(f"{v:,} {k}" for k, v in h.counts.items()) for h in hosts),
              flush=True)

        queries = {h.label: count_statements(app, h) for h in hosts}

        port = free_port()
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY=secret_key,
                   APP_BASE_URL=f"http://127.0.0.1:{port}", PYTHONUNBUFFERED="1")
        env.pop("APP_ENV", None)  # production config would set secure cookies, which plain HTTP never returns
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        server = procs.start("gunicorn", [gunicorn, "--workers", str(args.web_workers), "--bind", f"127.0.0.1:{port}",
                                          "wsgi:app"], env)
        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base_url}/healthz"), 30, "gunicorn", procs, interval=0.2)
        server_pids = [server.pid, *children(server.pid)]  # the master and its workers

        latency = {}
        for host in hosts:
            cookies = login_cookies(base_url, host)
            latency[host.label] = {}
            for page, path in host.urls().items():
                url = f"{base_url}{path}"
                measure = load_ab if args.client == "ab" else load
                measure(url, cookies, args.clients, 2 * args.clients, 30, server_pids, [])  # warm both workers
                latency[host.label][page] = measure(url, cookies, args.clients, args.requests, args.duration,
                                                    server_pids, database_pids(database_url))
                procs.check_alive()
                print(f"  {host.label} {page}: {latency[host.label][page]['n']} requests", flush=True)
        return {"hosts": hosts, "queries": queries, "latency": latency, "logs": workdir, "load": load_before,
                "database": "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"}
    except BaseException:
        procs.print_tails()
        raise
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def report(r: dict, args) -> None:
    """One table per host, and the query counts of both hosts side by side."""
    large, small = r["hosts"]
    print(f"\n{r['database']}, gunicorn --workers {args.web_workers}, {args.clients} concurrent clients ({args.client}) on loopback, "
          f"{os.cpu_count()} CPUs, load average {r['load'][0]:.1f} before / {os.getloadavg()[0]:.1f} after")
    header = (f"{'host':6} {'page':14} {'requests':>8} {'err':>4} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
              f"{'req/s':>6} {'KiB':>5} {'1 req ms':>8} {'srv CPU':>7} {'db CPU':>6} {'queries':>7}  p95 ≤ {TARGET_P95_MS:.0f} ms")
    print(header)
    for host in (large, small):
        for page in PAGES:
            m = r["latency"][host.label][page]
            count, alone = r["queries"][host.label][page]
            print(f"{host.label:6} {page:14} {m['n']:8d} {m['errors']:4d} {m['p50']:7.1f} {m['p95']:7.1f} "
                  f"{m['max']:7.1f} {m['rate']:6.0f} {m['bytes'] / 1024:5.0f} {alone:8.1f} {m['server_cpu']:7.1f} "
                  f"{m['database_cpu']:6.1f} "
                  f"{count:7d}  "
                  f"{'yes' if m['p95'] <= TARGET_P95_MS else 'NO'}"
                  + (f"  errors: {m['error_kinds']}" if m["errors"] else ""))
    print("\nSQL statements per page (large host / 10× smaller host):")
    for page in PAGES:
        a, b = r["queries"]["large"][page][0], r["queries"]["small"][page][0]
        print(f"  {page:14} {a:3d} / {b:3d}  {'equal' if a == b else 'DIFFERENT: a query per row somewhere'}")
    print("\n'1 req ms': one request at a time in this process (test client, no HTTP), the page's own time "
          "without queueing.\n'srv CPU': CPU ms the gunicorn processes spent per request under load "
          f"(the clients: {_mean_client_cpu(r):.1f} ms per request); 'db CPU': the PostgreSQL backends' "
          "(0 on SQLite, which runs in the gunicorn workers).")
    if r["logs"].exists():
        print(f"logs and database kept in {r['logs']}")


def _mean_client_cpu(r: dict) -> float:
    pages = [m for by_page in r["latency"].values() for m in by_page.values()]
    return sum(m["client_cpu"] for m in pages) / len(pages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size of the large host: × (300 services, 3,000 slots, 30,000 bookings) (default 1)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per page and host (default 1000)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="at most this many seconds per page and host (default 30)")
    parser.add_argument("--database-url", default=None,
                        help="an empty database to use instead of a temporary SQLite file (e.g. PostgreSQL)")
    parser.add_argument("--client", choices=["ab", "python"], default="ab" if shutil.which("ab") else "python",
                        help="the load generator: ApacheBench (default when installed) or Python threads")
    parser.add_argument("--web-workers", type=int, default=2,
                        help="gunicorn sync workers (default 2; Procfile.production runs WEB_CONCURRENCY=4)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args(argv)
    run_and_report(run, lambda result: report(result, args), args)


if __name__ == "__main__":
    main()
