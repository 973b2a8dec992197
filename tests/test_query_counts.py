"""The host's busiest pages cost the same number of SQL queries however much data the host has.

A behaviour test, not a timing test: an N+1 (one query per slot, per booking …) shows up as a
count that grows with the data. Each page is fetched in a fresh app context, so with a fresh
database session and a fresh ``g``, as every request in production is; otherwise rows the test
loaded would sit in the session's identity map and hide lazy loads.
"""
from datetime import timedelta

import pytest
from sqlalchemy import event

from app.extensions import db
from tests.conftest import selects_sending_due_mail

PAGES = ("/dashboard", "/dashboard/upcoming", "/services/{service_id}", "/services/{service_id}?tab=past",
         "/slots/{slot_id}", "/slots/{slot_id}?q=%40example", "/settings/zoom")


@pytest.fixture
def count_queries(app, client):
    """``count_queries(url)``: GET ``url`` as the logged-in client; return the SQL statements it ran."""

    def count(url: str) -> list[str]:
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        with app.app_context():  # a fresh session and ``g``, as in a real request
            event.listen(db.engine, "before_cursor_execute", record)
            try:
                response = client.raw.get(url)
            finally:
                event.remove(db.engine, "before_cursor_execute", record)
        assert response.status_code == 200, url
        return statements

    return count


@pytest.fixture
def host_with_data(client, make_host, make_service, make_slot, make_booking, link_zoom, zoom, run_jobs):
    """A host with ``k`` Zoom services × ``2k`` slots × ``2k`` bookings, logged in.

    Returns the URL arguments of its first service and that service's first slot.

    Half of each slot's bookings are made before the host links Zoom (listed on the settings
    page as not covered), half after (their meetings are issued and URL emails planned).
    """

    def build(k: int, zoom_email: str) -> int:
        host = make_host()
        services = [make_service(host, title=f"講座 {i}", capacity=4 * k) for i in range(k)]
        slots = [make_slot(service, starts_in=timedelta(days=2 + j, hours=i))
                 for i, service in enumerate(services) for j in range(2 * k)]
        for slot in slots:
            for _ in range(k):
                make_booking(slot)
        zoom.add_user(zoom_email)
        link_zoom(host, zoom_email)  # logs the host in
        for slot in slots:
            for _ in range(k):
                make_booking(slot)
        run_jobs()  # meetings issued, confirmations sent
        return {"service_id": services[0].id, "slot_id": slots[0].id}

    return build


def test_host_pages_cost_the_same_queries_for_three_times_the_data(client, host_with_data, count_queries):
    small_ids = host_with_data(1, "small@zoom.test")
    small = {page: count_queries(page.format(**small_ids)) for page in PAGES}
    client.post("/logout", form_url="/dashboard")
    big_ids = host_with_data(3, "big@zoom.test")
    big = {page: count_queries(page.format(**big_ids)) for page in PAGES}
    grown = {page: (len(small[page]), len(big[page])) for page in PAGES if len(big[page]) != len(small[page])}
    assert not grown, f"queries (small, 3× data) per page: {grown}\n" + "\n\n".join(
        f"{page}:\n" + "\n".join(big[page]) for page in grown)


def test_a_batch_of_url_emails_reads_the_same_statements_for_four_times_the_guests(
        app, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp):
    """The guests of one date share its meeting and the host's link: read once per outbox batch
    (``issuing.batch_meeting``/``batch_link``), not once per email (an N+1 shows as a count that grows)."""
    from app import clock
    from app.mail import outbox

    host = make_host()
    link_zoom(host, "basic@zoom.test")

    def selects_to_send_the_url_emails_of(guests: int) -> int:
        db.session.rollback()  # a fresh snapshot: the work horse's session wrote since
        slot = make_slot(make_service(host, capacity=20), timedelta(days=3))
        for i in range(guests):
            make_booking(slot, f"ゲスト{i}", f"guest{i}.{slot.id}@example.com")
        run_jobs()
        outbox.send_due()  # the confirmations and the host's booking notice: out of the way
        clock.travel_to(slot.starts_at - timedelta(hours=24))
        selects = selects_sending_due_mail(app, guests + 1)  # and the host's URL notice
        clock.reset()  # the second date is made from the real now again
        return selects

    selects_to_send_the_url_emails_of(1)  # a first batch also reads what the link's first use loads
    assert selects_to_send_the_url_emails_of(3) == selects_to_send_the_url_emails_of(12)


def test_a_batch_of_lessons_of_many_hosts_reads_their_links_and_meetings_in_one_query_each(
        app, client, make_host, link_zoom, zoom, make_service, make_slot, make_booking, run_jobs, smtp):
    """At the top of the hour a batch holds a lesson of each of many hosts: their meetings and Zoom
    links are read for the whole batch at once (``issuing._preload_meetings_and_links``), and each
    lesson's check on Zoom takes its host's token from the link read (``Grants._loaded``), not from
    a query of its own."""
    from app import clock
    from app.mail import outbox
    from app.zoom import link as zoom_link

    def selects_to_send_the_url_emails_of(hosts: int) -> int:
        db.session.rollback()
        slots = []
        for _ in range(hosts):
            host = make_host()
            zoom.add_user(f"{host.email.split('@')[0]}@zoom.test")
            link_zoom(host, f"{host.email.split('@')[0]}@zoom.test")
            client.post("/logout", form_url="/dashboard")  # the next host links theirs
            slot = make_slot(make_service(host, capacity=5), timedelta(days=3))
            for i in range(2):
                make_booking(slot, f"ゲスト{i}", f"guest{i}.{slot.id}@example.com")
            slots.append(slot)
        run_jobs()
        outbox.send_due()  # the confirmations and the hosts' booking notices: out of the way
        clock.travel_to(max(slot.starts_at for slot in slots) - timedelta(hours=24))  # every URL email due
        for slot in slots:  # tokens as fresh as at any top of the hour (refreshing is not what is counted)
            zoom_link.access_token(zoom_link.connection_for(slot.service.host_id).id)
        db.session.rollback()  # a fresh snapshot: the refreshes wrote in sessions of their own
        for kind in ("host_booking_notice", "meeting_host_notice"):  # one per host or lesson: not counted
            outbox.cancel_pending(kind=kind)
        db.session.commit()
        selects = selects_sending_due_mail(app, hosts * 2)  # the guests' URL emails
        clock.reset()
        return selects

    selects_to_send_the_url_emails_of(1)  # a first batch also reads what the links' first use loads
    assert selects_to_send_the_url_emails_of(2) == selects_to_send_the_url_emails_of(6)
