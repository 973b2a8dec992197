"""Guests' replies reach the host.

Every guest email is From 「<host>（<platform>）」 at the platform's sender address, with Reply-To
the host's contact address (``users.contact_email``, else the login address), and its footer says
that a reply reaches the host; the emails to hosts stay the platform's own (送信専用). No host name
can break or inject a header. The public pages show the contact address only when the host chose to.
All through the real SMTP server (aiosmtpd), as guests receive them.
"""
from datetime import timedelta
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser

import pytest
from sqlalchemy import event

from app import clock
from app.booking.booking import cancel_booking
from app.extensions import db
from app.mail import outbox
from app.mail.render import build_message, header_name, render_delivery
from app.models import Delivery
from app.services.slots import cancel_slot, move_slot
from tests.conftest import body_html, body_text

SENDER = "no-reply@booking.test"
REPLY_LINE = "このメールに返信すると、ホスト（{}）に届きます。"
SEND_ONLY = "このメールは送信専用です"


def raw_header(message, name: str) -> str:
    """The header as it came over the wire (undecoded, unfolded)."""
    [(_, value)] = [(k, v) for k, v in message.raw_items() if k.lower() == name.lower()]
    return str(value)


def display_name(message, name: str) -> str:
    """The header's display name as RFC 2047 reads it: whitespace between adjacent encoded words is
    no text (Python's header parser keeps it, so long names are read with ``decode_header``)."""
    [address] = message[name].addresses
    phrase = " ".join(raw_header(message, name).split()).rsplit(" <", 1)[0]
    if phrase.startswith("=?"):
        return str(make_header(decode_header(phrase)))
    return address.display_name


def assert_written_as_host(message, host_name: str, contact: str) -> None:
    """From 「<host>（予約システム）」 <no-reply@…> in RFC 2047, Reply-To the contact, and a footer that says so."""
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (f"{host_name}（予約システム）", SENDER)
    raw = raw_header(message, "From")
    assert raw.isascii() and "=?utf-8?b?" in raw.lower() and raw.endswith(f"<{SENDER}>"), raw
    assert str(make_header(decode_header(raw.rsplit(" <", 1)[0]))) == f"{host_name}（予約システム）"
    [reply] = message["Reply-To"].addresses
    assert reply.addr_spec == contact and raw_header(message, "Reply-To").isascii()
    for part in (body_text(message), body_html(message)):
        assert REPLY_LINE.format(host_name) in part
        assert SEND_ONLY not in part
    assert body_text(message).rstrip().endswith(REPLY_LINE.format(host_name))


def assert_platform_own(message) -> None:
    """A host-facing email: From the platform alone, no Reply-To."""
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("予約システム", SENDER)
    assert message["Reply-To"] is None
    assert "このメールに返信すると" not in body_text(message) + body_html(message)


@pytest.fixture
def hanako(make_host):
    host = make_host(email="hanako.login@example.com", name="山田 花子")
    host.contact_email = "lessons@hanako.example"
    db.session.commit()
    return host


# --- every guest email is written in the host's name -------------------------------------------------

def test_confirmation_cancellation_removal_move_and_slot_cancel_reach_the_host(
        hanako, make_service, make_slot, make_booking, run_jobs, smtp):
    service = make_service(hanako, venue="manual_url", kind="class_event", title="書道教室")
    slot = make_slot(service, starts_in=timedelta(days=3))
    other = make_slot(service, starts_in=timedelta(days=5))
    stays = make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    leaves = make_booking(slot, "鈴木 花", "hana@example.com")
    removed = make_booking(other, "高橋 次郎", "jiro@example.com")
    db.session.commit()
    run_jobs()
    cancel_booking(leaves)
    cancel_booking(removed, by_host=True, message="体調不良のため")
    db.session.commit()
    move_slot(slot, slot.starts_at + timedelta(hours=2))
    db.session.commit()
    run_jobs()
    cancel_slot(slot)
    db.session.commit()
    run_jobs()
    subjects = {}
    for message in smtp.messages:
        to = message["To"].addresses[0].addr_spec
        if to == hanako.email:  # the host's own notices (if any) stay the platform's
            assert_platform_own(message)
            continue
        subjects.setdefault(to, []).append(str(message["Subject"]))
        assert_written_as_host(message, "山田 花子", "lessons@hanako.example")
        assert smtp.envelopes[smtp.messages.index(message)][0] == SENDER  # the envelope is the platform's
    assert len(subjects["ichiro@example.com"]) == 3  # confirmation, 【日時変更】, 【開催中止】
    assert len(subjects["hana@example.com"]) == 2  # confirmation, cancellation
    assert len(subjects["jiro@example.com"]) == 2  # confirmation, removal by the host


def test_url_email_and_bulk_message_reach_the_host(make_host, link_zoom, make_service, make_slot, make_booking,
                                                   run_jobs, smtp):
    from app.messages import bulk

    host = make_host(email="taro@example.com", name="田中 太郎")  # no contact address: the login one
    link_zoom(host)
    service = make_service(host, title="オンライン英会話")
    slot = make_slot(service, starts_in=timedelta(hours=5))  # the URL email is due at once
    make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    db.session.commit()
    run_jobs()
    bulk.compose(host, service, slot_ids=[slot.id], all_upcoming=False, subject="{guest_name}様へ持ち物のご案内",
                 body="筆をお持ちください。", scheduled_at=None)
    run_jobs()
    mails = smtp.to("ichiro@example.com")
    subjects = [str(m["Subject"]) for m in mails]
    assert subjects[:2] == ["【お申し込み完了】オンライン英会話", "【参加URLのご案内】オンライン英会話"]
    assert subjects[2:] == ["佐藤 一郎様へ持ち物のご案内"]
    for message in mails:
        assert_written_as_host(message, "田中 太郎", "taro@example.com")


def test_host_facing_emails_stay_the_platforms(app, hanako, run_jobs, smtp):
    from app.auth import accounts

    with app.test_request_context():
        accounts.request_password_reset(hanako.email)
    db.session.commit()
    run_jobs()
    [message] = smtp.to(hanako.email)
    assert_platform_own(message)
    assert SEND_ONLY in body_html(message)


# --- no host name can break a header -----------------------------------------------------------------

NASTY = [
    "山田\r\nBcc: evil@example.com",
    "Yamada\r\nBcc: evil@example.com",
    "Hanako\nReply-To: evil@example.com",
    'Hanako "the teacher", <evil@example.com>',
    "山田, <evil@example.com> \"花子\"",
    "=?utf-8?b?ZXZpbEBleGFtcGxlLmNvbQ==?= <evil@example.com>",
    "山田\u2028花子\u202e\u200b\x01\x85",  # (NUL cannot be stored by PostgreSQL at all)
    "山田花子" * 20,
    "Alexander Montgomery-Fitzgerald the Third of Somewhere Very Long Indeed",
    "\r\n\t",
]


@pytest.mark.parametrize("name", NASTY)
def test_no_host_name_breaks_or_injects_a_header(hanako, make_service, make_slot, make_booking, run_jobs, smtp,
                                                 name):
    hanako.display_name = name  # past the forms, as a row written by code could be
    db.session.commit()
    slot = make_slot(make_service(hanako, venue="manual_url", kind="class_event"), starts_in=timedelta(days=3))
    make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    db.session.commit()
    run_jobs()
    [message] = smtp.to("ichiro@example.com")
    for header in ("From", "Reply-To", "To", "Subject"):
        assert len(message.get_all(header)) == 1, header
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["From"].addresses] == [SENDER]
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["lessons@hanako.example"]
    shown = header_name(name)
    assert display_name(message, "From") == (f"{shown}（予約システム）" if shown else "予約システム")
    assert display_name(message, "Reply-To") == shown
    assert len(shown) <= 40 and "\n" not in shown and "\r" not in shown and "\u202e" not in shown
    for _, value in message.raw_items():
        assert all(len(line) <= 998 for line in str(value).splitlines())
    for header in ("From", "Reply-To"):  # RFC 2047: an encoded word is at most 75 characters
        words = raw_header(message, header).split()
        assert all(len(word) <= 75 for word in words if word.startswith("=?")), words


def test_a_closed_account_reads_no_replies(hanako, make_service, make_slot, make_booking, run_jobs, smtp):
    slot = make_slot(make_service(hanako, venue="manual_url", kind="class_event"), starts_in=timedelta(days=3))
    booking = make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    db.session.commit()
    hanako.deleted_at = clock.now()
    db.session.commit()
    delivery = db.session.query(Delivery).filter_by(booking_id=booking.id).one()
    rendered = render_delivery(delivery)
    assert rendered.reply_host is None
    message = BytesParser(policy=policy.default).parsebytes(build_message(delivery, rendered).as_bytes())
    assert_platform_own(message)
    assert SEND_ONLY in body_text(message) and SEND_ONLY in body_html(message)


def test_rendering_a_batch_loads_the_host_once(hanako, make_service, make_slot, make_booking, run_jobs, smtp):
    """Rows render in batches of hundreds: the reply host costs no query per row."""
    service = make_service(hanako, venue="manual_url", kind="class_event", capacity=40)
    slot = make_slot(service, starts_in=timedelta(days=3))

    def users_queries(count: int) -> int:
        for n in range(count):
            make_booking(slot, f"生徒{n}", f"student{count}-{n}@example.com")
        db.session.commit()
        seen = []

        def count_users(conn, cursor, statement, *args):
            if "FROM users" in statement:
                seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count_users)
        try:
            outbox.send_due()
        finally:
            event.remove(db.engine, "before_cursor_execute", count_users)
        return len(seen)

    assert users_queries(3) == users_queries(12)


# --- previews read as guests get them ------------------------------------------------------------------

def test_previews_show_where_a_reply_goes(app, hanako, make_service):
    """The host's live preview of the confirmation (no row, so no ``reply_host`` in the context)."""
    from app.services.notes import preview_confirmation

    service = make_service(hanako, venue="manual_url", kind="class_event")
    with app.test_request_context():
        mail = preview_confirmation(service, "")
    assert REPLY_LINE.format("山田 花子") in mail.text and REPLY_LINE.format("山田 花子") in mail.html
    assert SEND_ONLY not in mail.text + mail.html


# --- the public pages ------------------------------------------------------------------------------------

def test_the_contact_address_is_shown_only_when_the_host_chooses(client, hanako, make_service, make_slot):
    service = make_service(hanako, venue="manual_url", kind="class_event")
    make_slot(service, starts_in=timedelta(days=3))
    slot = make_slot(service, starts_in=timedelta(days=4))
    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert "lessons@hanako.example" not in page and hanako.email not in page and "mailto:" not in page
    booked = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎",
                                                     "guest_email": "ichiro@example.com", "confirm": "1"})
    assert booked.status_code == 302
    page = client.get(booked.headers["Location"]).get_data(as_text=True)  # the booked page
    assert "lessons@hanako.example" not in page and hanako.email not in page
    hanako.show_contact_publicly = True
    db.session.commit()
    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert 'href="mailto:lessons@hanako.example"' in page and hanako.email not in page
    hanako.contact_email = ""
    db.session.commit()
    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert f'href="mailto:{hanako.email}"' in page
