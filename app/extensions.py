"""Flask extensions, created unbound and bound to the app in ``create_app``."""
import os
import sqlite3

from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

# Named constraints so Alembic migrations are stable on SQLite and PostgreSQL alike.
naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: foreign keys on, WAL so readers never block the writer, wait for locks.

    ``synchronous=NORMAL`` is SQLite's recommended setting in WAL mode: a commit no longer
    waits for an fsync of the WAL (the checkpoint still syncs). The database stays consistent
    after any crash; an application or process crash loses nothing; only a power loss or OS
    crash can lose the last commits before it. Every writer holds the one write lock through
    its commit, so the fsync per commit was what bounded the outbox (one commit per email).
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        # SQLAlchemy emits BEGIN itself (below) instead of pysqlite's deferred handling.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        _owner_only(cursor)  # first: SQLite creates the -wal and -shm files with the database's mode
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def _owner_only(cursor) -> None:
    """The database file and its -wal/-shm: 0600, this user's only (they hold every guest's data)."""
    path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
    for name in (path, f"{path}-wal", f"{path}-shm") if path else ():  # "" for an in-memory database
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """SQLite: BEGIN IMMEDIATE for a transaction opened with ``begin_write``; plain BEGIN otherwise.

    A deferred transaction that reads and then writes fails at once ("database is locked") when
    another connection committed in between; taking the write lock first makes it wait
    (busy_timeout) instead. Reads stay deferred so they never block anybody.
    """
    if conn.dialect.name == "sqlite":
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def write_requests_take_the_lock(app) -> None:
    """The first transaction of every POST request starts with the write lock (SQLite), once
    the whole request body has arrived.

    Views read (the user, the row) and then write; see ``_sqlite_begin``. Later transactions of
    the same request are deferred again, so a view that commits before calling Zoom does not
    hold the lock through incidental reads while an independent session needs it. The body is
    read first (bounded by ``MAX_CONTENT_LENGTH``): a client that trickles its body holds a
    thread of ours, never the database. Views marked ``locks_when_writing`` take it themselves.
    """

    @app.before_request
    def _lock_for_writes():
        from flask import request

        if request.method in ("GET", "HEAD", "OPTIONS") or db.engine.dialect.name != "sqlite":
            return
        if getattr(app.view_functions.get(request.endpoint), "locks_when_writing", False):
            return
        request.get_data(cache=True, parse_form_data=True)
        begin_write()


def locks_when_writing(view):
    """Mark a POST view that takes the write lock itself, when it first writes (``begin_write``).

    For views that do slow work before writing, or never write: the webhook (it verifies and
    enqueues), and the account views (a password hash costs ~0.1 s of CPU, which must not be
    spent holding the lock every other writer waits for).
    """
    view.locks_when_writing = True
    return view


def reads_only(view):
    """Mark a view whose GET never writes: on PostgreSQL its statements run without a transaction.

    PostgreSQL's READ COMMITTED gives every statement its own snapshot inside a transaction too,
    so a read-only page sees the same rows either way; what the transaction adds is a BEGIN and
    a ROLLBACK: CPU on the server and in the app for every page. A marked view that
    tries to write fails (``_refuse_writes``). SQLite keeps its transaction: there it
    is one snapshot for the whole page and costs nothing measurable.
    """
    view.reads_only = True
    return view


def read_views_skip_the_transaction(app) -> None:
    """Run the statements of ``reads_only`` views in autocommit (PostgreSQL); see ``reads_only``."""
    from flask import request

    @app.before_request
    def _autocommit_reads():
        if request.method not in ("GET", "HEAD") or not getattr(app.view_functions.get(request.endpoint),
                                                                   "reads_only", False):
            return
        session = db.session()
        session.info["reads_only"] = True
        if db.engine.dialect.name == "postgresql" and not session.in_transaction():
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    @app.teardown_request
    def _end_reads(exc):
        session = db.session()
        if session.info.pop("reads_only", False):
            session.rollback()  # gives the connection back to the pool, which restores its isolation


def _refuse_writes(session) -> None:
    if session.info.get("reads_only"):
        raise RuntimeError("a view marked reads_only tried to write; remove the mark")


@event.listens_for(Session, "before_flush")
def _no_flush_in_read_views(session, flush_context, instances):
    _refuse_writes(session)


@event.listens_for(Session, "do_orm_execute")
def _no_write_statements_in_read_views(state):
    if state.is_insert or state.is_update or state.is_delete:
        _refuse_writes(state.session)


def begin_write() -> None:
    """Start the session's next transaction holding the write lock.

    On SQLite a transaction that reads and then writes fails at once ("database is locked")
    when another writer committed in between; taking the lock first makes it wait instead.
    PostgreSQL ignores the option. Ends the current (read-only) transaction first.
    """
    session = db.session()
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("begin_write() with unsaved changes")
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={"sqlite_immediate": True})
