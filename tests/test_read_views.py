"""Views marked ``reads_only``: on PostgreSQL their GETs run without a transaction, and never write."""
import pytest
from sqlalchemy import event, func, select, update

from app.extensions import db
from app.models import Slot, User

READ_PAGES = ("/dashboard", "/dashboard/upcoming", "/services", "/services/{service_id}", "/slots/{slot_id}",
              "/settings/zoom", "/messages")


@pytest.fixture
def record_statements(app):
    """``record(fn)``: run ``fn``; return (statement, ran in autocommit?) for each SQL statement."""

    def record(fn):
        ran = []

        def listener(conn, cursor, statement, parameters, context, executemany):
            dbapi = conn.connection.dbapi_connection
            # psycopg: ``autocommit``; SQLite: SQLAlchemy emits its own BEGIN (see extensions).
            ran.append((statement, getattr(dbapi, "autocommit", None) is True))

        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            fn()
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return ran

    return record


def test_read_pages_run_without_a_transaction_on_postgresql_and_in_one_on_sqlite(
        app, client, login, make_host, make_service, make_slot, make_booking, record_statements):
    host = make_host()
    service = make_service(host)
    slot = make_slot(service)
    make_booking(slot)
    login(host)
    postgresql = db.engine.dialect.name == "postgresql"
    for page in READ_PAGES:
        url = page.format(service_id=service.id, slot_id=slot.id)
        with app.app_context():  # a fresh session, as in a real request
            statements = record_statements(lambda: client.raw.get(url))
        queries = [s for s, _ in statements if s.lstrip().upper().startswith("SELECT")]
        assert queries, url
        if postgresql:
            assert all(autocommit for _, autocommit in statements), (url, statements)
        else:
            assert statements[0][0] == "BEGIN" and not any(autocommit for _, autocommit in statements), url


def test_a_form_posted_to_a_read_view_still_writes_in_a_transaction(
        app, client, login, make_host, make_service, record_statements):
    host = make_host()
    service = make_service(host)
    login(host)
    url = f"/services/{service.id}"
    token = client.token(url)
    statements = record_statements(lambda: client.post_raw(url, data={"csrf_token": token,
                                                                      "starts_at": "2030-01-05T10:00"}))
    assert any(s.lstrip().upper().startswith("INSERT") for s, _ in statements)
    assert not any(autocommit for _, autocommit in statements)
    assert db.session.scalar(select(func.count()).select_from(Slot).where(Slot.service_id == service.id)) == 1


@pytest.mark.parametrize("write", ["flush", "statement"])
def test_a_read_view_that_writes_fails_and_writes_nothing(app, make_host, write):
    host = make_host()
    with app.test_request_context("/dashboard"):
        app.preprocess_request()  # the app's before_request hooks, as for a real GET /dashboard
        with pytest.raises(RuntimeError, match="reads_only"):
            if write == "flush":
                db.session.get(User, host.id).display_name = "書いてはいけない"
                db.session.flush()
            else:
                db.session.execute(update(User).where(User.id == host.id).values(display_name="書いてはいけない"))
        app.do_teardown_request()
    db.session.rollback()
    assert db.session.scalar(select(User.display_name).where(User.id == host.id)) != "書いてはいけない"
