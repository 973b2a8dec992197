"""Every page a host, a guest or a staff member opens, on a 375 × 812 phone and a 1280 px desktop.

One Chromium page visits every GET route of ``app.url_map`` (and the pages only a POST shows: the
Zoom OFF result, the signup confirmation, the error pages), each with demo-like data that makes it
as long as it gets: long Japanese titles and names, long email addresses, Zoom states, banners.
It fails when a page

- scrolls sideways (``document.documentElement.scrollWidth > innerWidth``),
- wraps a text one character per line (a table cell squeezed to one glyph: 佐／藤／美／咲), or,
  on the phone, has a visible button, link, form control or ``<summary>`` smaller than 44 × 44 px.

What counts as a target follows ``../shared/tools/phone_check.py`` (buttons and ``a.button``, which
it counts under 40 px) and goes further, as the issue asks (every link and input, 44 px). One kind
of target is exempt, as WCAG 2.5.8 exempts it ("the target is in a sentence"): a link without
``.button`` inside running text, i.e. whose block also holds at least ``SENTENCE_CHARS`` characters
that are not link text. Making such a link 44 px tall would open the lines of the paragraph apart;
a link that stands alone (a 「← 戻る」 line, a title, a table cell, links joined by 「・」) is not
exempt. A checkbox or radio button is measured by its label, which is what a finger taps.

A full-page screenshot of each page at each width goes to ``test-artifacts/pages/<name>-<width>.png``
(gitignored) for a person to look at. A GET route this test does not know fails it until it is given
data below or listed in ``NOT_PAGES`` with the reason.
"""
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from app import clock, crypto
from app.auth import accounts
from app.booking import booking as bookings
from app.extensions import db
from app.messages import bulk
from app.models import Delivery, DeliveryStatus, LegacyZoomLink, MeetingStatus, SlotStatus, Meeting
from app.models import MeetingFailure
from app.zoom import legacy
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

PHONE, DESKTOP = 375, 1280
MIN_TARGET = 44
SENTENCE_CHARS = 8
#: The top bar is one row (56 px; a 「メニュー」 button on phones), not links wrapping onto lines.
MAX_HEADER = 72
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pages"

#: GET routes that are not pages a person reads, and why.
NOT_PAGES = {
    "static": "files",
    "dashboard.favicon": "an icon",
    "dashboard.healthz": "a health check for the load balancer",
    "dashboard.index": "redirects to the dashboard or the login page",
    "messages.progress": "JSON read by progress.js",
    "services.start_meeting": "redirects to Zoom's host start URL",
    "booking.join_go": "「参加する」: redirects to the lesson's join URL (its page is booking.join)",
    "services.booking_qr": "the booking page's QR code as a PNG file",
    "services.guests_csv": "a slot's guest list as a CSV file",
    "zoom.callback": "Zoom's OAuth redirect back: redirects to the settings page",
    "account.photo": "a host's profile photo (JPEG)",
    "booking.calendar_file": "a guest's .ics calendar file",
    "booking.google_calendar": "redirects to Google Calendar",
}

LONG_TITLE = "はじめてのオンライン書道レッスン〜筆ペンで美しい文字を書けるようになる全6回コース〜"
LONG_EMAIL = "misaki.sato.calligraphy-lessons-2026@example-school.co.jp"


def local_moment(days_ahead: int, hour: int) -> datetime:
    """UTC of ``hour``:00 Japan time, ``days_ahead`` days from today."""
    day = clock.to_local(clock.now()).date() + timedelta(days=days_ahead)
    return clock.local_to_utc(datetime.combine(day, time(hour)))


@pytest.fixture
def demo(app, client, live_server, link_zoom, link_google, run_jobs, smtp, make_host, make_service, make_slot,
         make_booking, monkeypatch, tmp_path):
    """A host in mid-migration (legacy link still ON, deadline announced, personal Basic Zoom linked)
    with three services, slots in every state, guests, messages and deliveries; a staff member; and
    a received email in the staff mailbox. Returns the URL arguments and tokens the routes need."""
    host = make_host(email="hanako.yamada@example.com", name="山田 花子")
    staff = make_host(email="staff-layout@example.com", name="運営スタッフ", is_staff=True)
    db.session.add(LegacyZoomLink(host_id=host.id, sub_account_email="sub1@platform-zoom.example"))
    db.session.commit()
    legacy.announce(clock.to_local(clock.now()).date() + timedelta(days=12))
    link_zoom(host)  # Basic: the 40-minute warnings show
    client.post("/logout", form_url="/dashboard")
    link_google(host)  # a free personal account: the 60-minute group warning shows

    online = make_service(host, title=LONG_TITLE, kind="online", venue="zoom", capacity=5, duration_minutes=90,
                          description="自宅で楽しむ書道入門です。筆ペンと半紙をご用意ください。\n資料: "
                                      "https://example.com/shodo/beginners-guide-2026-very-long-path.pdf",
                          host_notes="開始5分前から入室できます。\n資料: https://example.com/shodo/materials.pdf")
    manual = make_service(host, title="個別相談（Google Meet）", kind="private", venue="manual_url", capacity=1,
                          duration_minutes=30, host_notes="当日はこちらから: https://meet.example.com/abc-defg-hij")
    make_service(host, title="月謝制クラス", kind="subscription", venue="manual_url", capacity=20)
    meet = make_service(host, title="Google Meetで少人数グループ英会話", kind="online", venue="google_meet", capacity=4,
                        duration_minutes=75)
    meet_slot = make_slot(meet, starts_in=timedelta(days=2))
    make_booking(meet_slot, "伊藤 さくら", "sakura.ito@example.com")

    soon = make_slot(online, starts_in=timedelta(hours=20))  # the URL email is due: it goes out
    guests = [make_booking(soon, name, email) for name, email in (
        ("佐藤 美咲", LONG_EMAIL), ("Alexander Montgomery-Fitzgerald", "alexander.montgomery@example.com"),
        ("高橋 一郎", "ichiro@example.com"))]
    midnight = make_slot(online, starts_in=timedelta(days=5), starts_at=local_moment(5, 23))  # 23:00〜翌0:30
    make_booking(midnight, "田中 花子", "hanako.tanaka@example.com")
    failed = make_slot(online, starts_in=timedelta(days=8))
    make_booking(failed, "鈴木 次郎", "jiro@example.com")
    run_jobs()  # meetings issued on the emulator, confirmations and the due URL email sent
    bookings.cancel_booking(guests[2])  # after receiving the URL: the slot page names him
    db.session.commit()
    meeting = db.session.query(Meeting).filter_by(slot_id=failed.id).one()
    meeting.status, meeting.failure = MeetingStatus.FAILED, MeetingFailure.DAILY_LIMIT
    cancelled = make_slot(online, starts_in=timedelta(days=10))
    db.session.add(Meeting(slot_id=cancelled.id, host_id=host.id, status=MeetingStatus.DELETE_FAILED,
                               external_id=str(81234567890), error_detail="Zoom API 500"))
    cancelled.status = SlotStatus.CANCELLED
    make_slot(online, starts_in=timedelta(days=3))  # open, nobody yet
    past = make_slot(manual, starts_in=timedelta(days=1))
    make_booking(past, "過去 の生徒", "past@example.com")
    past.starts_at = clock.now() - timedelta(days=3)
    manual_slot = make_slot(manual, starts_in=timedelta(days=4))
    private = make_booking(manual_slot, "長い名前の予約者さん", "private-guest@example.com")
    db.session.commit()

    sent = bulk.compose(host, online, slot_ids=[soon.id], all_upcoming=False, subject="【ご連絡】当日の持ち物について",
                        body="{guest_name}様\n当日は筆ペンをご用意ください。", scheduled_at=None)
    run_jobs()
    scheduled = bulk.compose(host, online, slot_ids=[soon.id, midnight.id], all_upcoming=False,
                             subject="開催前日のリマインド", body="明日お会いできるのを楽しみにしています。",
                             scheduled_at=clock.now() + timedelta(days=1))
    failure = db.session.query(Delivery).filter_by(booking_id=guests[1].id).first()
    failure.status, failure.last_error = DeliveryStatus.FAILED, "(550, b'5.1.1 <alexander.montgomery@example.com>: no such user')"
    db.session.commit()
    smtp.wait_for(1)

    # The staff mailbox shows what `make run`'s sink stores: one email, in a Maildir of this test's.
    import mailbox
    from app.mail.render import build_message, render_delivery

    monkeypatch.setitem(app.config, "MAILBOX_DIR", str(tmp_path / "mailbox"))
    box = mailbox.Maildir(app.config["MAILBOX_DIR"], create=True)
    confirmation = db.session.query(Delivery).filter_by(booking_id=guests[0].id, kind="booking_confirmation").one()
    key = box.add(build_message(confirmation, render_delivery(confirmation)).as_bytes())

    pending = make_host(email="unverified@example.com", name="確認待ち", verified=False)
    return {
        "host": host, "staff": staff, "online": online,
        "values": {"tool_key": "zoom", "service_id": online.id, "slot_id": soon.id, "message_id": sent.id, "delivery_id": failure.id,
                   "booking_id": guests[0].id, "public_id": online.public_id, "key": key},
        "tokens": {"booking.cancel": guests[0].cancel_token, "booking.join": private.join_token,
                   "booking.booked": guests[0].cancel_token, "booking.reschedule": guests[0].cancel_token,
                   "auth.reset_password": accounts.make_reset_token(host),
                   "auth.verify_email": accounts.make_verify_token(pending)},
        "more": {"scheduled": scheduled.id, "midnight": midnight.id, "cancelled": cancelled.id,
                 "manual": manual.id, "failed": failed.id, "meet": meet.id, "meet_slot": meet_slot.id,
                 "meet_public": meet.public_id},
    }


#: Measures a page; returns what is wrong with it.
MEASURE = """([phone, minTarget, sentenceChars]) => {
  const bar = document.querySelector('header');
  const problems = {overflow: document.documentElement.scrollWidth - window.innerWidth, small: [], vertical: [],
                    header: bar ? Math.round(bar.getBoundingClientRect().height) : 0};
  const shown = e => {
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && e.closest('[hidden], [aria-hidden=true]') === null;
  };
  const describe = (e, r) => `${e.tagName.toLowerCase()}${e.className ? '.' + String(e.className).trim().replace(/\\s+/g, '.') : ''}`
    + ` "${(e.innerText || e.value || e.getAttribute('aria-label') || '').trim().slice(0, 30)}" ${Math.round(r.width)}×${Math.round(r.height)}`;
  const blockOf = e => {
    let b = e.parentElement;
    while (b && /^inline/.test(getComputedStyle(b).display)) b = b.parentElement;
    return b;
  };
  const inSentence = a => {
    if (a.tagName !== 'A' || a.classList.contains('button')) return false;
    const block = blockOf(a);
    if (!block) return false;
    let text = block.innerText || '';
    for (const link of block.querySelectorAll('a')) text = text.replace(link.innerText, '');
    return text.replace(/[\\s・|｜/()（）]/g, '').length >= sentenceChars;
  };
  if (problems.overflow > 0) {  // name the elements that stick out (the innermost ones), for the message
    problems.wide = [...document.body.querySelectorAll('*')].filter(e => {
      const r = e.getBoundingClientRect();
      return r.right > window.innerWidth + 0.5 && r.width > 0 && ![...e.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 0.5);
    }).slice(0, 3).map(e => describe(e, e.getBoundingClientRect()));
  }
  if (phone) {
    for (const e of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')) {
      const target = (e.type === 'checkbox' || e.type === 'radio') && e.closest('label') || e;
      if (!shown(target) || inSentence(e)) continue;
      const r = target.getBoundingClientRect();
      if (r.height < minTarget - 0.5 || r.width < minTarget - 0.5) problems.small.push(describe(target, r));
    }
  }
  // One character per line: a text of 3 characters or more laid out on 3 lines or more, none wider
  // than 1.6 characters.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    if (text.length < 3 || !node.parentElement || !shown(node.parentElement)) continue;
    range.selectNodeContents(node);
    const lines = [...range.getClientRects()].filter(r => r.width > 0);
    if (lines.length < 3) continue;
    const size = parseFloat(getComputedStyle(node.parentElement).fontSize);
    if (Math.max(...lines.map(r => r.width)) < size * 1.6) problems.vertical.push(text.slice(0, 20));
  }
  return problems;
}"""


def repeat_preview_url(values) -> str:
    """「まとめて追加」's preview over 52 weeks from a week ago at the time of a booked slot: past,
    existing and overlapping dates flagged."""
    from app.models import Slot
    start = clock.to_local(db.session.get(Slot, values["slot_id"]).starts_at)
    return (f"/services/{values['service_id']}/repeat?start_date={(start.date() - timedelta(days=7)).isoformat()}"
            f"&weekday=&at={start:%H}%3A{start:%M}&count=52")


def pages_to_visit(app, live_server, demo) -> dict[str, list[tuple[str, str]]]:
    """``{role: [(name, url)]}`` for every GET page; fails on a GET route it has no data for."""
    adapter, values, tokens, more = app.url_map.bind("localhost"), demo["values"], demo["tokens"], demo["more"]
    pages = {"anonymous": [], "host": [], "staff": []}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint):
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
            continue
        missing = rule.arguments - values.keys() - {"token"}
        assert not missing, f"{rule.rule}: give test_phone_layout a value for {missing}, or list it in NOT_PAGES"
        if "token" in rule.arguments:
            assert rule.endpoint in tokens, f"{rule.rule}: give test_phone_layout a token for {rule.endpoint}"
        arguments = {name: tokens[rule.endpoint] if name == "token" else values[name] for name in rule.arguments}
        url = adapter.build(rule.endpoint, arguments)
        if rule.endpoint.startswith("staff."):
            role = "staff"
        elif rule.endpoint.startswith(("auth.", "booking.")) or rule.rule.startswith(("/s/", "/c/", "/j/")):
            role = "anonymous"
        else:
            role = "host"
        pages[role].append((rule.endpoint, url))
    # The same routes in their other states, as hosts see them.
    pages["host"] += [
        ("services.detail-past", f"/services/{values['service_id']}?tab=past"),
        ("services.detail-manual", f"/services/{more['manual']}"),
        ("services.slot_detail-midnight", f"/slots/{more['midnight']}"),
        ("services.slot_detail-failed", f"/slots/{more['failed']}"),
        ("services.slot_detail-cancelled", f"/slots/{more['cancelled']}"),
        ("services.detail-google_meet", f"/services/{more['meet']}"),
        ("services.slot_detail-google_meet", f"/slots/{more['meet_slot']}"),
        ("meetings.turn_off-google_meet", "/settings/google_meet/off"),
        ("services.slot_detail-search", f"/slots/{values['slot_id']}?q=%E4%BD%90%E8%97%A4"),
        ("messages.compose-service", f"/messages/new?service_id={values['service_id']}"),
        ("messages.detail-scheduled", f"/messages/{more['scheduled']}"),
        ("services.repeat-preview", repeat_preview_url(values)),
        ("errors.404", "/no-such-page"),
        ("errors.403", "/staff/"),
    ]
    pages["staff"] += [("staff.templates-meeting_url", "/staff/templates?kind=meeting_url")]
    pages["anonymous"] += [("booking.service_page-google_meet", f"/s/{more['meet_public']}")]
    pages["anonymous"] = [(n, u) for n, u in pages["anonymous"] if n not in ("auth.signup_sent", "auth.login_code",
                                                                          "auth.login_code_setup")]
    return pages


class Sweep:
    """One page, both widths: visit, measure, screenshot; collect what is wrong."""

    def __init__(self, page):
        self.page, self.problems, self.visited = page, [], []

    def look(self, name: str, url: str | None = None) -> None:
        """Go to ``url`` (or stay), and measure and screenshot it at both widths."""
        page = self.page
        page.set_viewport_size({"width": PHONE, "height": 812})
        if url is not None:
            response = page.goto(url)
            assert response is not None and response.status < 500, (name, url, response and response.status)
        for width in (PHONE, DESKTOP):
            page.set_viewport_size({"width": width, "height": 812})
            found = page.evaluate(MEASURE, [width == PHONE, MIN_TARGET, SENTENCE_CHARS])
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
            if found["overflow"] > 0:
                self.problems.append(f"{name} @{width}: scrolls sideways by {found['overflow']} px ({page.url}): "
                                     f"{found.get('wide')}")
            if found["header"] > MAX_HEADER:
                self.problems.append(f"{name} @{width}: the top bar wraps ({found['header']} px tall)")
            if found["vertical"]:
                self.problems.append(f"{name} @{width}: one character per line: {found['vertical'][:3]}")
            if found["small"]:
                self.problems.append(f"{name} @{width}: {len(found['small'])} targets under {MIN_TARGET} px: "
                                     f"{found['small'][:4]}")
        self.visited.append(name)

    def report(self) -> str:
        """Pages × widths, and how many pages scroll sideways / have small targets / vertical text."""
        def pages_with(what):
            return len({p.split(" @")[0] + p.split(" @")[1][:5] for p in self.problems if what in p})
        return (f"{len(self.visited)} pages × 2 widths: {pages_with('scrolls sideways')} page-widths scroll sideways, "
                f"{pages_with('targets under')} have targets under {MIN_TARGET} px, "
                f"{pages_with('one character per line')} wrap one character per line, "
                f"{pages_with('top bar wraps')} have a top bar that wraps\n" + "\n".join(self.problems) + "\n")

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        page = self.page
        page.context.clear_cookies()
        page.goto("/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("main form button[type=submit]")
        page.wait_for_load_state()


def test_every_page_fits_a_phone_and_a_desktop(app, page, live_server, demo, monkeypatch):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    pages = pages_to_visit(app, live_server, demo)
    sweep = Sweep(page)

    # Anyone: the login and signup pages, a guest's pages (booking, confirmation, cancel, join).
    for name, url in pages["anonymous"]:
        sweep.look(name, url)
    page.goto("/signup")
    page.fill("input[name=email]", "new-host@example.com")
    page.fill("input[name=display_name]", "新しい ホスト")
    page.fill("input[name=password]", "calligraphy-2026")
    page.fill("input[name=confirm]", "calligraphy-2026")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/signup/sent")
    sweep.look("auth.signup_sent")
    # A staff member's second factor: enrolment, then the code of an enrolled one.
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_TOTP", True)
    sweep.log_in(demo["staff"].email)
    page.wait_for_url("**/login/code/setup")
    sweep.look("auth.login_code_setup")
    enrolled = accounts.create_user("staff-enrolled@example.com", "運営 二", PASSWORD, is_staff=True)
    enrolled.totp_secret = crypto.encrypt("JBSWY3DPEHPK3PXP")
    db.session.commit()
    sweep.log_in(enrolled.email)
    page.wait_for_url("**/login/code")
    sweep.look("auth.login_code")
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_TOTP", False)

    # The host: every host page, then Zoom OFF (its result page exists only after the POST).
    sweep.log_in(demo["host"].email)
    for name, url in pages["host"]:
        sweep.look(name, url)
    # The phone's 「メニュー」 opens the host navigation as a list of full-width links (measured open);
    # the desktop shows the links in the bar instead.
    page.set_viewport_size({"width": PHONE, "height": 812})
    page.goto("/dashboard")
    menu = page.locator("header details > summary")
    if not menu.is_visible():
        sweep.problems.append(f"dashboard @{PHONE}: no 「メニュー」 button in the top bar")
    else:
        menu.click()
        if not page.locator("header details").get_by_role("link", name="サービス一覧").is_visible():
            sweep.problems.append(f"dashboard @{PHONE}: the opened menu does not show the links")
        sweep.look("nav-menu-open")
        if menu.is_visible() or not page.locator("header").get_by_role("link", name="サービス一覧").is_visible():
            sweep.problems.append(f"dashboard @{DESKTOP}: the links are not in the bar")
    page.goto("/settings/zoom/off")
    page.click("main form button.danger[type=submit]")
    page.wait_for_load_state()
    sweep.look("meetings.turn_off-done")

    # Staff.
    sweep.log_in(demo["staff"].email)
    for name, url in pages["staff"]:
        sweep.look(name, url)

    (ARTIFACTS / "report.txt").write_text(sweep.report(), encoding="utf-8")
    endpoints = {name.split("-")[0] for name in sweep.visited}
    gets = {r.endpoint for r in app.url_map.iter_rules() if "GET" in r.methods}
    assert gets - set(NOT_PAGES) <= endpoints, gets - set(NOT_PAGES) - endpoints
    assert not sweep.problems, "\n".join(sweep.problems)


def test_the_booking_url_is_copied_with_one_tap_and_its_qr_code_saved_for_a_flyer(app, page, live_server, client,
                                                                                 login, make_host, make_service):
    host = make_host(email="flyer@example.com", name="山田 花子")
    service = make_service(host, title=LONG_TITLE, venue="manual_url", kind="class_event")
    public_url = f"{live_server}/s/{service.public_id}"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.set_viewport_size({"width": PHONE, "height": 812})
    Sweep(page).log_in(host.email)
    page.goto(f"/services/{service.id}")

    # The URL sits in a read-only field that fits the phone, with 「コピー」 beside it …
    field = page.locator("#public-url")
    assert field.input_value() == public_url
    box = field.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE
    page.get_by_role("button", name="コピー").click()
    # … one tap copies it and says so in Japanese.
    page.get_by_text("コピーしました").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == public_url

    # The QR code is drawn on the page (an SVG data: image, allowed by the CSP) …
    qr = page.get_by_role("img", name="予約ページのQRコード")
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    # … and 「QRコードを保存（チラシ用）」 downloads a PNG large enough to print, of the same URL.
    with page.expect_download() as download:
        page.get_by_role("link", name="QRコードを保存（チラシ用）").click()
    png = Path(download.value.path()).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and download.value.suggested_filename == f"booking-qr-{service.id}.png"
    width = int.from_bytes(png[16:20], "big")
    assert width >= 1000
    from app.services import sharing

    assert png == sharing.qr_png(public_url)

    # Another host gets nothing (the route checks the owner).
    login(make_host(email="other@example.com"))
    assert client.get(f"/services/{service.id}/qr.png").status_code in (403, 404)
