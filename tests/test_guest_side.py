"""The guest side belongs to the host (issue 17): the guest layout, what a guest reads before booking,
the confirm step, 「カレンダーに追加」, cancelling and booking again, guest pages for bad links, the host's
profile (name, photo, introduction) and the guest emails' wording.

Through the real app (CSRF on, the bot check on), Redis, the outbox and SMTP, the Zoom emulator,
and Chromium for the journey at 375 px (screenshots under test-artifacts/guest/).
"""
import io
import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from app import clock
from app.extensions import db
from app.mail.render import render_kind
from app.mail.samples import sample_contexts
from app.models import Booking, BookingStatus, Delivery, Service, User
from app.queue import get_redis
from tests.conftest import body_html, body_text

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "guest"
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff60\u3000-\u303f]")
#: What only host pages have: the host layout's brand and login links, the sandbox badge.
HOST_CHROME = ("予約ホスト管理", "ログイン", "新規登録", "Zoom sandbox", "ログアウト", "ダッシュボード")
ADDRESS = "東京都渋谷区神南1-2-3 青山ビル4階"
POLICY = "前日まではキャンセル無料です。当日のキャンセルはご遠慮ください。"


def png_bytes(size=(640, 480), color=(200, 80, 40)) -> bytes:
    """A real PNG image (a photo a host might upload)."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def jpeg_with_gps(size=(1200, 900)) -> bytes:
    """A JPEG as a phone writes it: EXIF with a GPS position, the camera, and an orientation (rotated)."""
    image = Image.new("RGB", size, (30, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 15"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° to show upright
    exif[0x8825] = {1: "N", 2: (35.0, 39.0, 29.0), 3: "E", 4: (139.0, 42.0, 2.0)}  # GPSInfo: Shibuya
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def words(html: str) -> str:
    """A page's text without tags (what a person reads): inline tags join, block tags separate."""
    inline = re.sub(r"</?(?:a|strong|em|s)\b[^>]*>", "", html)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", inline)))


def page_text(response) -> str:
    return response.get_data(as_text=True)


def assert_guest_layout(html: str, where: str) -> None:
    """A guest page: the guest layout, none of the host pages' chrome."""
    assert '<body class="guest">' in html, where
    text = words(html)
    assert not [c for c in HOST_CHROME if c in text], (where, [c for c in HOST_CHROME if c in text])


@pytest.fixture
def host_with_profile(make_host):
    from app.account import profile

    host = make_host(name="山田 花子")
    profile.set_profile(host, "書道家 山田 花子", "書道歴20年。初めての方にも、筆の持ち方から丁寧にお教えします。")
    profile.set_photo(host, profile.photo_jpeg(png_bytes()))
    db.session.commit()
    return host


@pytest.fixture
def in_person(host_with_profile, make_service, make_slot):
    """A 90-minute in-person class with an address and a cancellation policy, and one slot."""
    service = make_service(host_with_profile, title="はじめての書道教室", kind="class_event", venue="in_person",
                           duration_minutes=90, capacity=5, description="筆と半紙はこちらでご用意します。",
                           venue_address=ADDRESS, cancellation_policy=POLICY, host_notes="汚れてもよい服装でお越しください。")
    # 10:00 JST, three days ahead: a range that never crosses midnight, whatever time the suite runs
    ten = (clock.now() + timedelta(days=3)).replace(hour=1, minute=0, second=0, microsecond=0)
    slot = make_slot(service, starts_in=timedelta(days=3), starts_at=ten)
    return service, slot


def book(client, service, slot, email="ichiro@example.com", name="佐藤 一郎"):
    """The confirm step's final post (「この内容で申し込む」); returns the response (302 to the booked page)."""
    return client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": name, "guest_email": email,
                                                   "confirm": "1"})


# --- the booking page --------------------------------------------------------------------------------

def test_the_booking_page_shows_what_a_guest_needs_before_booking(client, in_person):
    service, slot = in_person
    html = page_text(client.get(f"/s/{service.public_id}"))
    text = words(html)
    assert_guest_layout(html, "booking page")
    start, end = (clock.to_local(t).strftime("%H:%M") for t in (slot.starts_at, slot.ends_at))
    for shown in ("書道家 山田 花子",  # the host's name heads the page …
                  "書道歴20年。初めての方にも",  # … with the introduction
                  "はじめての書道教室", "筆と半紙はこちらでご用意します。",  # the service and its description
                  "所要時間 90分", f"{start}〜{end}",  # the duration, and each date's start and end
                  f"開催方法 対面 {ADDRESS} 地図を見る",  # where, with a map
                  "残り5席", "キャンセルポリシー " + POLICY,
                  "お申し込みにより、利用規約とプライバシーポリシーに同意したものとみなします。"):
        assert shown in text, shown
    assert re.search(r'<span class="seats">残り5席</span>', html)  # one span: 「残り5席」 stays on one line
    assert f'src="/photos/{db.session.get(User, service.host_id).photo_digest}.jpg"' in html
    assert 'href="https://www.google.com/maps/search/?api=1&amp;query=' in html
    assert 'href="/terms"' in html and 'href="/privacy"' in html
    assert "汚れてもよい服装" not in text  # the host notes are for booked guests only
    for url, title in (("/terms", "利用規約"), ("/privacy", "プライバシーポリシー")):
        page = client.get(url)
        assert page.status_code == 200 and f"<h1>{title}</h1>" in page_text(page)
        assert "ひな形です。運営者が自社の内容に書き換えて" in page_text(page)  # the operator's to edit
        assert_guest_layout(page_text(page), url)


def test_the_booking_page_names_the_video_tool(client, make_host, link_zoom, make_service, make_slot):
    manual = make_service(make_host(), title="オンライン茶話会", kind="class_event", venue="manual_url",
                          host_notes="https://meet.example.com/secret-room")
    make_slot(manual)
    text = words(page_text(client.get(f"/s/{manual.public_id}")))
    assert "開催方法 オンライン 参加方法は、お申し込み後の申し込み完了メールでご案内します。" in text
    assert "secret-room" not in text  # a room's URL is for booked guests only
    host = make_host()
    link_zoom(host)
    client.post("/logout", form_url="/dashboard")
    zoom = make_service(host, title="Zoom英会話")
    make_slot(zoom)
    text = words(page_text(client.get(f"/s/{zoom.public_id}")))
    assert "開催方法 オンライン（Zoom） 参加URLは開催24時間前までにメールでお送りします。" in text


def test_a_logged_in_host_sees_the_guest_layout_on_their_own_booking_page(client, login, in_person):
    service, _ = in_person
    login(db.session.get(User, service.host_id))
    assert_guest_layout(page_text(client.get(f"/s/{service.public_id}")), "booking page, host logged in")


# --- the confirm step ----------------------------------------------------------------------------------

def test_the_first_post_only_shows_the_confirm_step_and_keeps_the_bot_check_token(client, app, in_person):
    service, slot = in_person
    url = f"/s/{service.public_id}"
    app.config["BOOKING_FORM_MIN_SECONDS"] = 3
    try:
        form_page = page_text(client.get(url))
        token = client._HIDDEN.search(form_page).group(2)
        typed = {"slot_id": slot.id, "guest_name": "佐藤 一郎", "guest_email": "ichiro@example.com",
                 "form_token": token}
        # At once (as a quick guest might): the confirm step, not a refusal, and nothing booked.
        confirm = client.post(url, typed)
        html = page_text(confirm)
        assert confirm.status_code == 200 and "お申し込み内容の確認" in html
        text = words(html)
        for shown in ("まだお申し込みは完了していません", "サービス はじめての書道教室", "お名前 佐藤 一郎",
                      "メールアドレス ichiro@example.com", f"開催方法 対面 {ADDRESS}", "キャンセルポリシー " + POLICY,
                      "利用規約とプライバシーポリシーに同意"):
            assert shown in text, shown
        assert clock.format_datetime_local(slot.starts_at) in text
        assert_guest_layout(html, "confirm step")
        # The data and the same token go on in hidden fields, with 「この内容で申し込む」 and 「入力画面に戻る」.
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
        hidden.update(re.findall(r'<input id="\w+" name="(\w+)" type="hidden" value="([^"]*)"', html))
        assert {k: hidden[k] for k in ("slot_id", "guest_name", "guest_email", "form_token")} == {
            "slot_id": str(slot.id), "guest_name": "佐藤 一郎", "guest_email": "ichiro@example.com", "form_token": token}
        assert re.search(r'<button[^>]*name="confirm" value="1"[^>]*>この内容で申し込む</button>', html)
        assert re.search(r'<button[^>]*name="back" value="1"[^>]*>入力画面に戻る</button>', html)
        db.session.rollback()
        assert db.session.query(Booking).count() == 0 and db.session.query(Delivery).count() == 0
        assert not list(get_redis().scan_iter("booking-form:*"))  # the token is not used up

        # 「入力画面に戻る」: the form again, as typed, still with the same token.
        back = page_text(client.post(url, {**typed, "back": "1"}))
        assert 'value="佐藤 一郎"' in back and 'value="ichiro@example.com"' in back
        assert f'value="{slot.id}"\n                 \n                 checked' in back or \
            re.search(rf'value="{slot.id}"\s+checked', back)
        assert client._HIDDEN.search(back).group(2) == token

        # 「この内容で申し込む」 a moment later: booked once; the same rendering cannot book twice.
        clock.advance(timedelta(seconds=3))
        booked = client.post(url, {**typed, "confirm": "1"})
        assert booked.status_code == 302 and "/booked/" in booked.headers["Location"]
        replay = client.post(url, {**typed, "confirm": "1", "guest_email": "bot@example.com"})
        assert replay.status_code == 200 and "受け付けられませんでした" in page_text(replay)
    finally:
        app.config["BOOKING_FORM_MIN_SECONDS"] = 0
    db.session.rollback()
    assert [b.guest_email for b in db.session.query(Booking)] == ["ichiro@example.com"]


def test_the_final_post_too_soon_shows_the_confirm_step_again(client, app, in_person):
    service, slot = in_person
    url = f"/s/{service.public_id}"
    app.config["BOOKING_FORM_MIN_SECONDS"] = 3
    try:
        token = client._HIDDEN.search(page_text(client.get(url))).group(2)
        data = {"slot_id": slot.id, "guest_name": "佐藤 一郎", "guest_email": "ichiro@example.com",
                "form_token": token, "confirm": "1"}
        too_fast = page_text(client.post(url, data))
        assert "もう一度「この内容で申し込む」を押してください" in too_fast and "お申し込み内容の確認" in too_fast
        assert client._HIDDEN.search(too_fast).group(2) == token
        clock.advance(timedelta(seconds=3))
        assert client.post(url, data).status_code == 302
    finally:
        app.config["BOOKING_FORM_MIN_SECONDS"] = 0


def test_the_confirm_step_refuses_a_date_that_filled_up_or_bad_input_and_keeps_the_token(
        client, make_host, make_service, make_slot, make_booking):
    service = make_service(make_host(), capacity=1, venue="manual_url", kind="class_event")
    full, free = make_slot(service), make_slot(service, starts_in=timedelta(days=3))
    make_booking(full)
    url = f"/s/{service.public_id}"
    token = client._HIDDEN.search(page_text(client.get(url))).group(2)
    typed = {"guest_name": "後藤", "guest_email": "goto@example.com", "form_token": token}
    page = page_text(client.post(url, {**typed, "slot_id": full.id}))
    assert "この日時は満席になりました" in page and "お申し込み内容の確認" not in page
    page = page_text(client.post(url, {**typed, "slot_id": free.id, "guest_name": "http://spam.example"}))
    assert "お名前にURLやメールアドレス" in page and "お申し込み内容の確認" not in page
    # Neither refusal used the page's token up: the guest picks another date and books with it.
    assert client.post(url, {**typed, "slot_id": free.id, "confirm": "1"}).status_code == 302
    db.session.rollback()
    assert [(b.slot_id, b.guest_email) for b in db.session.query(Booking).filter_by(guest_email="goto@example.com")] \
        == [(free.id, "goto@example.com")]


# --- after booking: how to join, the calendar, cancelling --------------------------------------------------

def test_the_booked_page_and_email_say_how_to_join_and_offer_the_calendar_and_cancel(
        client, in_person, run_jobs, smtp, app):
    service, slot = in_person
    response = book(client, service, slot)
    assert response.status_code == 302
    booked = page_text(client.get(response.headers["Location"]))
    text = words(booked)
    assert_guest_layout(booked, "booked page")
    booking = db.session.query(Booking).one()
    for shown in ("お申し込みが完了しました", f"当日は会場（{ADDRESS}）へお越しください。",
                  "ホストからの連絡事項 汚れてもよい服装でお越しください。", "カレンダーに追加",
                  "キャンセルポリシー " + POLICY, "予約をキャンセルする"):
        assert shown in text, shown
    base = f"/s/{service.public_id}/booked/{booking.cancel_token}"
    assert f'href="{base}/calendar.ics"' in booked and f'href="{base}/google"' in booked
    assert f'href="/c/{booking.cancel_token}"' in booked

    # The .ics: the service, its start and end in UTC, the venue; the UID of the URL email's invitation.
    ics = client.get(f"{base}/calendar.ics")
    assert ics.status_code == 200 and ics.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert ics.headers["Content-Disposition"] == 'attachment; filename="booking.ics"'
    calendar = ics.get_data(as_text=True).replace("\r\n ", "")
    utc = "%Y%m%dT%H%M%SZ"
    for line in ("SUMMARY:はじめての書道教室", f"DTSTART:{slot.starts_at.strftime(utc)}",
                 f"DTEND:{slot.ends_at.strftime(utc)}", f"LOCATION:{ADDRESS}", f"UID:slot-{slot.id}@booking.local"):
        assert line in calendar, line
    assert "汚れてもよい服装でお越しください" in calendar and f"/booked/{booking.cancel_token}" in calendar
    # Google Calendar: the same entry, filled in on Google's page.
    google = client.get(f"{base}/google")
    assert google.status_code == 302
    target = urlsplit(google.headers["Location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}{target.path}" == "https://calendar.google.com/calendar/render"
    assert query["action"] == ["TEMPLATE"] and query["text"] == ["はじめての書道教室"]
    assert query["dates"] == [f"{slot.starts_at.strftime(utc)}/{slot.ends_at.strftime(utc)}"]
    assert query["location"] == [ADDRESS]

    # The confirmation email says the same, headed by the host.
    run_jobs()
    [mail] = smtp.wait_for(1)
    mail_text, mail_html = body_text(mail), body_html(mail)
    public = app.config["APP_BASE_URL"]
    for shown in (f"■ 会場: {ADDRESS}", f"当日は会場（{ADDRESS}）へお越しください。", "━━ カレンダーに追加 ━━",
                  f"Googleカレンダー: {public}{base}/google", f"iPhone・Outlookなど: {public}{base}/calendar.ics",
                  "━━ キャンセルポリシー ━━\n" + POLICY, f"{public}/c/{booking.cancel_token}"):
        assert shown in mail_text, shown
    assert "書道家 山田 花子" in mail_html.split("<div style=\"background:#ffffff")[0]  # the header: the host
    photo = db.session.get(User, service.host_id).photo_digest
    assert f'<img src="{public}/photos/{photo}.jpg"' in mail_html
    assert "このメールに返信すると、ホスト（書道家 山田 花子）に届きます。" in mail_html  # replies reach the host


def test_an_online_booking_is_told_where_the_join_url_comes_from(client, make_host, link_zoom, make_service,
                                                                 make_slot, run_jobs, smtp):
    manual = make_service(make_host(), title="オンライン茶話会", kind="class_event", venue="manual_url",
                          host_notes="当日はこちらから: https://meet.example.com/room")
    slot = make_slot(manual)
    booked = words(page_text(client.get(book(client, manual, slot, "a@example.com").headers["Location"])))
    assert "参加方法は、下の「ホストからの連絡事項」をご確認ください。" in booked
    assert "当日はこちらから: https://meet.example.com/room" in booked
    host = make_host()
    link_zoom(host)
    client.post("/logout", form_url="/dashboard")
    zoom = make_service(host, title="Zoom英会話")
    slot = make_slot(zoom, starts_in=timedelta(days=3))
    response = book(client, zoom, slot, "b@example.com")
    booked = page_text(client.get(response.headers["Location"]))
    assert "参加URLは開催24時間前にメールでお送りします。" in words(booked)  # join_url_promise, kept
    ics = client.get(response.headers["Location"] + "/calendar.ics").get_data(as_text=True).replace("\r\n ", "")
    booking = db.session.query(Booking).filter_by(guest_email="b@example.com").one()
    assert re.search(rf"LOCATION:\S+/j/{booking.join_token}", ics)  # the stable link, for the calendar too
    run_jobs()
    mail = next(m for m in smtp.messages if m["To"].addresses[0].addr_spec == "b@example.com")
    assert "参加URLは開催24時間前にメールでお送りします。" in body_text(mail)


def test_after_cancelling_a_guest_finds_the_way_to_book_another_date(client, in_person):
    service, slot = in_person
    location = book(client, service, slot).headers["Location"]
    booking = db.session.query(Booking).one()
    cancel = page_text(client.get(f"/c/{booking.cancel_token}"))
    assert_guest_layout(cancel, "cancel page")
    assert "キャンセルポリシー " + POLICY in words(cancel) and "キャンセルせずに戻る" in words(cancel)
    done = client.post(f"/c/{booking.cancel_token}", follow_redirects=True)
    html = page_text(done)
    assert "キャンセルを受け付けました" in html and "この予約はキャンセル済みです。" in html
    assert f'href="/s/{service.public_id}">別の日時を予約する</a>' in html
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == BookingStatus.CANCELLED
    # The booked page and the /j/ page say so too, with the same way back; the calendar links are gone.
    for url in (location, f"/j/{booking.join_token}"):
        page = page_text(client.get(url))
        assert "キャンセルされています" in page and f'href="/s/{service.public_id}">別の日時を予約する</a>' in page, url
        assert_guest_layout(page, url)
    for url in (f"{location}/calendar.ics", f"{location}/google"):
        assert client.get(url).status_code == 404


def test_a_bad_or_used_link_shows_a_guest_page_not_the_host_login(client, in_person):
    service, slot = in_person
    book(client, service, slot)
    booking = db.session.query(Booking).one()
    other = "x" * 32
    for url in (f"/c/{other}", f"/j/{other}", f"/s/{service.public_id}/booked/{other}", f"/s/{other}",
                f"/s/{other}/booked/{booking.cancel_token}", f"/s/{service.public_id}/booked/{other}/calendar.ics"):
        response = client.get(url)
        html = page_text(response)
        assert response.status_code == 404, url
        assert "このページは表示できません" in html and "お送りしたメールのリンク" in html, url
        assert_guest_layout(html, url)
        assert "/login" not in html and "/dashboard" not in html, url


def test_too_many_posts_from_one_address_get_a_guest_page(client, app, in_person):
    service, slot = in_person
    app.config["PUBLIC_FORM_LIMIT"], limit = "1 per minute", app.config["PUBLIC_FORM_LIMIT"]
    try:
        book(client, service, slot, "a@example.com")
        refused = book(client, service, slot, "b@example.com")
    finally:
        app.config["PUBLIC_FORM_LIMIT"] = limit
    assert refused.status_code == 429 and "短時間にたくさんの送信がありました" in page_text(refused)
    assert_guest_layout(page_text(refused), "429")


# --- the host's profile ------------------------------------------------------------------------------------

def test_a_host_sets_the_name_introduction_and_photo_guests_see(client, login, make_host, make_service, make_slot):
    from app.account import profile

    host = make_host(name="山田")
    service = make_service(host, venue="manual_url", kind="class_event")
    make_slot(service)
    login(host)
    settings = page_text(client.get("/settings/account"))
    assert "プロフィール（予約者に表示）" in settings and 'enctype="multipart/form-data"' in settings
    saved = client.post("/settings/account/profile", {"display_name": "書道家 山田 花子",
                                                      "bio": "書道歴20年です。"}, form_url="/settings/account")
    assert saved.status_code == 302
    too_long = page_text(client.post("/settings/account/profile", {"display_name": "山田", "bio": "あ" * 301},
                                     form_url="/settings/account"))
    assert "自己紹介は300文字以内で入力してください。" in too_long

    # A phone photo: re-encoded small, upright, square, and without its EXIF (GPS, camera).
    original = jpeg_with_gps()
    assert b"PhoneMaker" in original
    uploaded = client.post("/settings/account/photo", {"photo": (io.BytesIO(original), "IMG_0001.jpg")},
                           form_url="/settings/account", content_type="multipart/form-data")
    assert uploaded.status_code == 302
    db.session.rollback()
    host = db.session.get(User, host.id)
    assert host.display_name == "書道家 山田 花子" and host.bio == "書道歴20年です。"
    served = client.get(f"/photos/{host.photo_digest}.jpg")
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stored = served.get_data()
    assert b"PhoneMaker" not in stored and b"Exif" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG" and image.size == (profile.PHOTO_SIZE, profile.PHOTO_SIZE)
        assert not image.getexif()
    assert len(stored) < 60_000
    etag = served.headers["ETag"]
    assert client.get(f"/photos/{host.photo_digest}.jpg", headers={"If-None-Match": etag}).status_code == 304
    page = page_text(client.get(f"/s/{service.public_id}"))
    assert f'src="/photos/{host.photo_digest}.jpg"' in page and "書道歴20年です。" in page

    # Not a photo, or too large: refused with a reason, the photo kept.
    for data, name, message in ((b"%PDF-1.7 not an image", "a.jpg", "JPEG・PNG・WebP形式の画像を選んでください"),
                                (b"GIF89a" + png_bytes()[8:], "a.gif", "JPEG・PNG・WebP形式の画像を選んでください"),
                                (b"\xff\xd8" + b"0" * (profile.PHOTO_UPLOAD_MAX + 10), "big.jpg", "8MBまで")):
        refused = client.post("/settings/account/photo", {"photo": (io.BytesIO(data), name)},
                              form_url="/settings/account", content_type="multipart/form-data")
        refused.request.environ["wsgi.input"].close()  # the test client's spool file of a large body
        assert refused.status_code == 200 and message in page_text(refused), name
    db.session.rollback()
    assert db.session.get(User, host.id).photo_digest == host.photo_digest
    removed = client.post("/settings/account/photo/remove", form_url="/settings/account")
    assert removed.status_code == 302
    db.session.rollback()
    assert db.session.get(User, host.id).photo_digest is None
    assert client.get(f"/photos/{host.photo_digest}.jpg").status_code == 404


def test_a_photo_that_would_decode_to_gigapixels_is_refused_before_decoding():
    from app.account import profile

    out = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(out, "PNG")  # ~200 kB on disk, 144 megapixels decoded
    with pytest.raises(profile.NotAPhoto) as refused:
        profile.photo_jpeg(out.getvalue())
    assert refused.value.too_large


# --- the service form -----------------------------------------------------------------------------------

def test_an_in_person_service_needs_its_address_and_any_service_takes_a_cancellation_policy(
        client, login, make_host):
    login(make_host())
    form = {"kind": "class_event", "title": "陶芸体験", "description": "", "duration_minutes": "120",
            "capacity": "6", "venue": "in_person", "host_notes": "", "cancellation_policy": POLICY}
    page = page_text(client.post("/services/new", form))
    assert "対面のサービスでは、会場の住所を入力してください" in page
    assert db.session.query(Service).count() == 0
    assert client.post("/services/new", {**form, "venue_address": f"  {ADDRESS} "}).status_code == 302
    service = db.session.query(Service).one()
    assert service.venue_address == ADDRESS and service.cancellation_policy == POLICY
    edit = page_text(client.get(f"/services/{service.id}/edit"))
    assert f'value="{ADDRESS}"' in edit and POLICY in edit
    # Held online now: the address goes (guests must not be sent to a venue).
    client.post(f"/services/{service.id}/edit", {**form, "venue": "manual_url", "venue_address": ADDRESS})
    db.session.refresh(service)
    assert service.venue_address == "" and service.cancellation_policy == POLICY


# --- the URL email -----------------------------------------------------------------------------------------

def test_the_url_email_names_the_service_offers_join_and_explains_the_40_minute_restart(
        make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, app):
    host = make_host(name="山田 花子")
    link_zoom(host, "basic@zoom.test")
    slot = make_slot(make_service(host, title="90分ヨガ", duration_minutes=90), starts_in=timedelta(hours=3))
    booking = make_booking(slot, name="佐藤 一郎", email="ichiro@example.com")
    run_jobs()
    mail = next(m for m in smtp.wait_for(2) if m["Subject"] == "【参加URLのご案内】90分ヨガ")
    text, html = body_text(mail), body_html(mail)
    assert "ご予約いただいた「90分ヨガ」の参加URLをお送りします。" in text
    join = f"{app.config['APP_BASE_URL']}/j/{booking.join_token}"
    assert re.search(rf'<a href="{re.escape(join)}"[^>]*>Zoomで参加する</a>', html)
    restart = "このミーティングは開始から40分で一度終了します。ホストがミーティングを再開しますので、同じURLからもう一度ご参加ください。"
    assert restart in text and restart in html
    assert "ZoomのURLのお知らせ" not in mail["Subject"]
    assert "山田 花子" in html.split("<div style=\"background:#ffffff")[0]  # the guest layout's header


# --- the gallery and the English catalog -------------------------------------------------------------------

def test_confirmation_samples_cover_each_venue_and_read_as_english_in_english(app):
    variants = sample_contexts("booking_confirmation")
    assert {ctx["venue"] for ctx in variants.values()} == {"video_tool", "online", "in_person"}
    with app.test_request_context():
        for kind in ("booking_confirmation", "meeting_url", "booking_cancelled", "slot_moved"):
            for variant, context in sample_contexts(kind, "en").items():
                mail = render_kind(kind, context, "en")
                for part in (mail.subject, mail.text, words(mail.html)):
                    assert not JAPANESE.search(part), (kind, variant, JAPANESE.findall(part))
        in_person = sample_contexts("booking_confirmation")["対面（会場の住所・キャンセルポリシーあり）"]
        mail = render_kind("booking_confirmation", in_person, "ja")
        assert "当日は会場（東京都渋谷区神南1-2-3 青山ビル4階）へお越しください。" in mail.text
        assert "━━ キャンセルポリシー ━━" in mail.text and "━━ カレンダーに追加 ━━" in mail.text


# --- in a browser, at 375 px: book → confirm → booked → calendar → cancel → book another date -------------

def shoot(page, name: str) -> None:
    """A full-page screenshot for a person to look at, and the page must not scroll sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, name
    if width < 641:
        small = page.evaluate("""[...document.querySelectorAll('main button, main a.button, footer a')]
            .filter(e => e.offsetParent && e.getBoundingClientRect().height < 44)
            .map(e => e.textContent.trim())""")
        assert not small, (name, small)


@pytest.mark.browser
def test_a_guest_on_a_phone_books_adds_to_calendar_cancels_and_books_again(page, in_person, make_slot, run_jobs,
                                                                           smtp):
    from playwright.sync_api import expect

    service, first = in_person
    second = make_slot(service, starts_in=timedelta(days=10))
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"/s/{service.public_id}")
    expect(page.get_by_text("残り5席").first).to_be_visible()
    shoot(page, "01-booking-page")
    page.get_by_label(re.compile(clock.format_date_local(first.starts_at).replace("(", r"\(").replace(")", r"\)"))).check()
    page.get_by_label("お名前").fill("佐藤 一郎")
    page.get_by_label("メールアドレス").fill("ichiro@example.com")
    page.get_by_role("button", name="申し込み内容を確認する").click()
    expect(page.get_by_role("heading", name="お申し込み内容の確認")).to_be_visible()
    shoot(page, "02-confirm")
    assert db.session.query(Booking).count() == 0
    page.get_by_role("button", name="この内容で申し込む").click()
    expect(page.get_by_role("heading", name="お申し込みが完了しました")).to_be_visible()
    shoot(page, "03-booked")

    # 「カレンダーに追加」: the .ics downloads with the lesson in it.
    with page.expect_download() as download:
        page.get_by_role("link", name="iPhone・Outlookなどに追加").click()
    ics = Path(download.value.path()).read_text(encoding="utf-8").replace("\r\n ", "")
    assert "SUMMARY:はじめての書道教室" in ics and f"LOCATION:{ADDRESS}" in ics
    google = page.get_by_role("link", name="Googleカレンダーに追加")
    assert google.get_attribute("target") == "_blank" and "/google" in google.get_attribute("href")

    page.get_by_role("link", name="予約をキャンセルする").click()
    expect(page.get_by_text("この予約をキャンセルしますか？")).to_be_visible()
    shoot(page, "04-cancel")
    page.get_by_role("button", name="キャンセルする").click()
    expect(page.get_by_text("この予約はキャンセル済みです。")).to_be_visible()
    shoot(page, "05-cancelled")
    page.get_by_role("link", name="別の日時を予約する").click()
    expect(page.get_by_role("heading", name="はじめての書道教室")).to_be_visible()
    page.get_by_label(re.compile(clock.format_date_local(second.starts_at).replace("(", r"\(").replace(")", r"\)"))).check()
    page.get_by_label("お名前").fill("佐藤 一郎")
    page.get_by_label("メールアドレス").fill("ichiro@example.com")
    page.get_by_role("button", name="申し込み内容を確認する").click()
    page.get_by_role("button", name="この内容で申し込む").click()
    expect(page.get_by_role("heading", name="お申し込みが完了しました")).to_be_visible()
    db.session.rollback()
    assert [(b.slot_id, b.status) for b in db.session.query(Booking).order_by(Booking.id)] == [
        (first.id, BookingStatus.CANCELLED), (second.id, BookingStatus.CONFIRMED)]


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_every_guest_page_and_email_fits_the_screen(page, width, in_person, make_host, make_service, make_slot,
                                                     make_booking, link_zoom, run_jobs, smtp, app):
    """Each guest page and guest email at a phone's and a desktop's width: no sideways scroll, 44 px
    targets on the phone, and a screenshot under test-artifacts/guest/ for a person to look at."""
    service, slot = in_person
    booking = make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    manual = make_service(make_host(name="鈴木 次郎"), title="オンライン茶話会", kind="class_event",
                          venue="manual_url", host_notes="当日はこちらから: https://meet.example.com/room")
    manual_booking = make_booking(make_slot(manual), "田中 花子", "hana@example.com")
    zoom_host = make_host(name="Zoom 先生")
    link_zoom(zoom_host, "basic@zoom.test")
    zoom_service = make_service(zoom_host, title="90分ヨガ", duration_minutes=90)
    zoom_booking = make_booking(make_slot(zoom_service, starts_in=timedelta(hours=3)), "高橋 健", "ken@example.com")
    run_jobs()
    page.set_viewport_size({"width": width, "height": 900})
    base = f"/s/{service.public_id}/booked/{booking.cancel_token}"
    pages = {"booking-page-in-person": f"/s/{service.public_id}", "booking-page-online": f"/s/{manual.public_id}",
             "booking-page-zoom": f"/s/{zoom_service.public_id}", "booked-in-person": base,
             "booked-online": f"/s/{manual.public_id}/booked/{manual_booking.cancel_token}",
             "booked-zoom": f"/s/{zoom_service.public_id}/booked/{zoom_booking.cancel_token}",
             "cancel": f"/c/{booking.cancel_token}", "join-not-yet": f"/j/{booking.join_token}",
             "terms": "/terms", "privacy": "/privacy", "bad-link": "/c/not-a-token"}
    for name, url in pages.items():
        page.goto(url)
        shoot(page, f"page-{name}")
    page.goto(f"/s/{service.public_id}")
    page.get_by_label("お名前").fill("佐藤 一郎")
    page.get_by_label("メールアドレス").fill("ichiro2@example.com")
    page.locator("input[name=slot_id]").first.check()
    page.get_by_role("button", name="申し込み内容を確認する").click()
    shoot(page, "page-confirm")
    client_cancel = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client_cancel.get(f"/c/{manual_booking.cancel_token}").get_data(as_text=True)).group(1)
    client_cancel.post(f"/c/{manual_booking.cancel_token}", data={"csrf_token": token})
    db.session.rollback()
    page.goto(f"/c/{manual_booking.cancel_token}")
    shoot(page, "page-cancelled")
    run_jobs()
    emails = {"confirmation-in-person": ("ichiro@example.com", "【お申し込み完了】"),
              "confirmation-online": ("hana@example.com", "【お申し込み完了】"),
              "confirmation-zoom": ("ken@example.com", "【お申し込み完了】"),
              "url": ("ken@example.com", "【参加URLのご案内】"),
              "cancelled": ("hana@example.com", "【キャンセル受付】")}
    for name, (to, subject) in emails.items():
        mail = next(m for m in smtp.messages if m["To"].addresses[0].addr_spec == to
                    and m["Subject"].startswith(subject))
        page.set_content(body_html(mail))
        shoot(page, f"email-{name}")
