"""A slot's guest list, one guest at a time: a message to that guest only, removing one booking,
the list as a CSV file for Excel, and those who cancelled in their own section."""
import csv
import io
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from playwright.sync_api import expect
from sqlalchemy import event, insert

from app import clock
from app.booking import booking as bookings
from app.extensions import db
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Slot
from app.services import slots as slot_actions
from tests.conftest import body_html, body_text
from tests.factories import PASSWORD

BOM = "\ufeff".encode()


def read_csv(response) -> list[list[str]]:
    data = response.get_data()
    assert data.startswith(BOM)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# --- CSV -------------------------------------------------------------------------------------------

def test_the_csv_file_has_every_guest_in_japanese_for_excel_and_no_formulas(
        client, login, make_host, make_service, make_slot, make_booking):
    host = make_host(name="山田 花子")
    service = make_service(host, title="はじめての書道/入門", venue="in_person", venue_address="東京", capacity=10)
    slot = make_slot(service, starts_at=clock.local_to_utc(clock.to_local(clock.now()).replace(
        year=2030, month=6, day=20, hour=10, minute=0, second=0, microsecond=0, tzinfo=None)))
    sato = make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    formulas = [make_booking(slot, name, f"f{n}@example.com")
                for n, name in enumerate(["=HYPERLINK(\"http://evil.example\",\"x\")", "+81-90", "-1+1", "@SUM(A1)"])]
    left = make_booking(slot, "鈴木 次郎", "jiro@example.com")
    removed = make_booking(slot, "ボット", "bot@example.com")
    clock.advance(timedelta(minutes=5))
    bookings.cancel_booking(left)
    bookings.cancel_booking(removed, by_host=True)
    db.session.commit()

    login(host)
    response = client.get(f"/slots/{slot.id}/guests.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "no-store" in response.headers["Cache-Control"]
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="guests-')
    ascii_part, utf8_part = disposition.split("; filename*=")
    assert ascii_part.isascii() and ascii_part.endswith('-20300620-1000.csv"')
    assert utf8_part == "UTF-8''" + quote("予約者_はじめての書道_入門_20300620-1000.csv", safe="")
    assert b"\r\n" in response.get_data()

    rows = read_csv(response)
    assert rows[0][:6] == ["名前", "メールアドレス", "予約日時", "状態", "キャンセル日時", "キャンセルの種類"]
    by_email = {row[1]: row for row in rows[1:]}
    assert len(rows) == 1 + 7
    assert by_email["ichiro@example.com"][0] == "佐藤 一郎"
    booked = clock.to_local(sato.created_at).strftime("%Y/%m/%d %H:%M")
    assert by_email["ichiro@example.com"][2:6] == [booked, "予約中", "", ""]
    cancelled_at = clock.to_local(clock.now()).strftime("%Y/%m/%d %H:%M")
    assert by_email["jiro@example.com"][3:] == ["キャンセル", cancelled_at, "予約者がキャンセル"]
    assert by_email["bot@example.com"][3:] == ["キャンセル", cancelled_at, "ホストが取り消し"]
    # Confirmed guests first, in booking order; then those who cancelled.
    assert [row[1] for row in rows[1:]][:5] == ["ichiro@example.com"] + [f"f{n}@example.com" for n in range(4)]
    # CSV injection: a name a spreadsheet would run as a formula is text.
    assert [by_email[f"f{n}@example.com"][0] for n in range(4)] == [
        "'=HYPERLINK(\"http://evil.example\",\"x\")", "'+81-90", "'-1+1", "'@SUM(A1)"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert formulas


def test_only_the_host_gets_the_csv_and_a_cancelled_date_says_so(
        client, login, make_host, make_service, make_slot, make_booking):
    host = make_host()
    slot = make_slot(make_service(host, venue="in_person", venue_address="東京"))
    make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    slot_actions.cancel_slot(slot)
    db.session.commit()
    login(make_host())
    assert client.get(f"/slots/{slot.id}/guests.csv").status_code == 404
    client.post("/logout", form_url="/dashboard")
    login(host)
    [_, row] = read_csv(client.get(f"/slots/{slot.id}/guests.csv"))
    assert row[3::2] == ["キャンセル", "開催中止"]
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    section = page[page.index('id="cancelled"'):]
    assert "キャンセルした方（1名）" in section and "ichiro@example.com" in section and "開催中止" in section


def _many_guests(slot, count: int, cancelled: int = 0) -> None:
    """``count`` confirmed and ``cancelled`` cancelled bookings of ``slot``, written in one statement."""
    now = clock.now()
    rows = [{"slot_id": slot.id, "guest_name": f"予約者{n}", "guest_email": f"g{n}@example.com",
             "mailbox": f"g{n}@example.com", "status": BookingStatus.CONFIRMED, "created_at": now}
            for n in range(count)]
    rows += [{"slot_id": slot.id, "guest_name": f"キャンセル{n}", "guest_email": f"c{n}@example.com",
              "mailbox": f"c{n}@example.com", "status": BookingStatus.CANCELLED, "created_at": now,
              "cancelled_at": now, "cancelled_by_host": n % 2 == 0} for n in range(cancelled)]
    db.session.execute(insert(Booking), rows)
    db.session.get(Slot, slot.id).booked_count = count
    db.session.commit()


def test_a_thousand_guests_cost_the_queries_of_three(app, client, login, make_host, make_service, make_slot):
    host = make_host()
    service = make_service(host, venue="in_person", venue_address="東京", capacity=1000)
    small, big = make_slot(service), make_slot(service, starts_in=timedelta(days=3))
    _many_guests(small, 3, cancelled=2)
    _many_guests(big, 1000, cancelled=200)
    login(host)

    def statements(url: str) -> tuple[list[str], bytes]:
        seen = []

        def record(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        with app.app_context():  # a fresh session and ``g``, as in a real request
            event.listen(db.engine, "before_cursor_execute", record)
            try:
                response = client.raw.get(url)
            finally:
                event.remove(db.engine, "before_cursor_execute", record)
        assert response.status_code == 200, url
        return seen, response.get_data()

    for url in ("/slots/{id}/guests.csv", "/slots/{id}"):
        few, _ = statements(url.format(id=small.id))
        many, data = statements(url.format(id=big.id))
        assert len(few) == len(many), f"{url}: {len(few)} vs {len(many)}\n" + "\n".join(many)
        if url.endswith(".csv"):
            assert data.decode("utf-8-sig").count("\r\n") == 1 + 1200
        else:
            page = data.decode()
            assert "キャンセルした方（200名）" in page and "新しい順に50名を表示しています" in page


# --- a message to one guest ----------------------------------------------------------------------------

def test_a_message_reaches_that_guest_only_and_the_row_shows_it(
        client, login, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host(name="山田 花子")
    service = make_service(host, title="陶芸教室", venue="in_person", venue_address="東京都渋谷区", capacity=5)
    slot = make_slot(service)
    one = make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    other = make_booking(slot, "鈴木 花", "hana@example.com")
    run_jobs()
    smtp.clear()
    login(host)
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert f"/bookings/{one.id}/message" in page and "メッセージを送る" in page
    form = client.get(f"/bookings/{one.id}/message").get_data(as_text=True)
    assert "ichiro@example.com" in form and "「陶芸教室」について" in form

    refused = client.post(f"/bookings/{one.id}/message", {"subject": "件名\r\nBcc: all@example.com", "body": "x"})
    assert "件名に改行は使えません" in refused.get_data(as_text=True)
    done = client.post(f"/bookings/{one.id}/message",
                       {"subject": "エプロンのご案内", "body": "佐藤さん、エプロンをお持ちください。\n{{ config }} https://example.com/map"},
                       follow_redirects=True)
    assert "佐藤 一郎様にメッセージを送ります。" in done.get_data(as_text=True)
    run_jobs()
    [mail] = smtp.wait_for(1)
    assert smtp.envelopes[0][1] == ["ichiro@example.com"] and not smtp.to("hana@example.com")
    assert mail["Subject"] == "エプロンのご案内"
    text = body_text(mail)
    assert "佐藤さん、エプロンをお持ちください。" in text and "{{ config }}" in text  # as typed, never a template
    assert "「陶芸教室」" in text and "山田 花子" in text
    assert '<a href="https://example.com/map"' in body_html(mail)
    db.session.rollback()
    [row] = db.session.query(Delivery).filter_by(kind="guest_message").all()
    assert (row.booking_id, row.status) == (one.id, DeliveryStatus.SENT)
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    mine = page[page.index(f'id="booking-{one.id}"'):page.index(f'id="booking-{other.id}"')]
    assert "メッセージ: 送信済み" in mine
    assert "メッセージ:" not in page[page.index(f'id="booking-{other.id}"'):]


def test_messages_only_to_the_hosts_own_confirmed_guests_within_the_days_budget(
        app, client, login, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host()
    slot = make_slot(make_service(host, venue="in_person", venue_address="東京"))
    guest, gone = make_booking(slot), make_booking(slot)
    bookings.cancel_booking(gone)
    db.session.commit()
    login(make_host())
    assert client.get(f"/bookings/{guest.id}/message").status_code == 404
    assert client.post(f"/bookings/{guest.id}/message", {"subject": "a", "body": "b"},
                       form_url="/dashboard").status_code == 404
    client.post("/logout", form_url="/dashboard")

    login(host)
    moved_on = client.get(f"/bookings/{gone.id}/message", follow_redirects=True).get_data(as_text=True)
    assert "キャンセルされているため、メッセージは送れません" in moved_on
    app.config["HOST_NOTICE_DAILY_LIMIT"], limit = 0, app.config["HOST_NOTICE_DAILY_LIMIT"]
    try:
        spent = client.post(f"/bookings/{guest.id}/message", {"subject": "件名", "body": "本文"})
    finally:
        app.config["HOST_NOTICE_DAILY_LIMIT"] = limit
    assert spent.status_code == 200 and "1日0通までです" in spent.get_data(as_text=True)
    db.session.rollback()
    assert db.session.query(Delivery).filter_by(kind="guest_message").count() == 0

    # Cancelled after it was written, before it went: it does not go.
    client.post(f"/bookings/{guest.id}/message", {"subject": "件名", "body": "本文"})
    db.session.rollback()
    bookings.cancel_booking(db.session.get(Booking, guest.id))
    db.session.commit()
    smtp.clear()
    run_jobs()
    db.session.rollback()
    assert db.session.query(Delivery).filter_by(kind="guest_message").one().status == DeliveryStatus.CANCELLED
    assert not [m for m in smtp.messages if m["Subject"] == "件名"]


# --- in a browser ----------------------------------------------------------------------------------------

@pytest.mark.browser
def test_host_messages_one_guest_removes_another_and_downloads_the_list(
        page, live_server, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host(email="tea@example.com", name="茶道 先生")
    service = make_service(host, title="茶道体験", venue="in_person", venue_address="京都市", capacity=5)
    slot = make_slot(service)
    sato = make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    make_booking(slot, "鈴木 花", "hana@example.com")
    bot = make_booking(slot, "ボット", "bot@example.com")
    run_jobs()
    smtp.clear()

    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/dashboard")
    page.goto(f"/slots/{slot.id}")

    # A message to 佐藤 only.
    page.locator(f"#booking-{sato.id}").get_by_role("link", name="メッセージを送る").click()
    expect(page.get_by_role("heading", name="佐藤 一郎様にメッセージを送る")).to_be_visible()
    page.get_by_label("件名").fill("着物の着付けについて")
    page.get_by_label("本文").fill("佐藤様\n着付けは30分前から始めます。")
    page.get_by_role("button", name="送信する").click()
    expect(page.get_by_text("佐藤 一郎様にメッセージを送ります。")).to_be_visible()
    assert page.url.endswith(f"/slots/{slot.id}#booking-{sato.id}")
    run_jobs()
    [mail] = smtp.wait_for(1)
    assert [rcpts for _, rcpts in smtp.envelopes] == [["ichiro@example.com"]]
    assert mail["Subject"] == "着物の着付けについて"
    assert "着付けは30分前から始めます。" in body_text(mail)
    page.reload()
    expect(page.locator(f"#booking-{sato.id}")).to_contain_text("メッセージ: 送信済み")

    # The bot's booking is removed, with a message; it moves to the cancelled section.
    page.locator(f"#booking-{bot.id}").get_by_role("link", name="予約を取り消す").click()
    page.get_by_label("予約者へのメッセージ（任意）").fill("重複したお申し込みのため取り消しました。")
    page.get_by_role("button", name="予約を取り消す").click()
    expect(page.get_by_text("ボット様のご予約を取り消し")).to_be_visible()
    expect(page.locator(f"#booking-{bot.id}")).to_have_count(0)
    cancelled = page.locator("#cancelled")
    expect(cancelled).to_contain_text("キャンセルした方（1名）")
    expect(cancelled.locator(f"#cancelled-{bot.id}")).to_contain_text("ホストが取り消し")
    expect(page.get_by_role("heading", name="予約者（2名）")).to_be_visible()
    run_jobs()
    smtp.wait_for(2)
    [removal] = smtp.to("bot@example.com")
    assert "重複したお申し込みのため取り消しました。" in body_text(removal)
    assert not smtp.to("hana@example.com")

    # The list as a CSV file, Japanese intact.
    with page.expect_download() as info:
        page.get_by_role("link", name="CSVをダウンロード").click()
    download = info.value
    assert download.suggested_filename.startswith("予約者_茶道体験_") and download.suggested_filename.endswith(".csv")
    with open(download.path(), "rb") as file:
        data = file.read()
    assert data.startswith(BOM)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert [row[0] for row in rows] == ["名前", "佐藤 一郎", "鈴木 花", "ボット"]
    assert rows[3][3:] == ["キャンセル", rows[3][4], "ホストが取り消し"] and re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d",
                                                                                       rows[3][4])
