"""Linking a host's Google account through the app and the Google emulator: OAuth (PKCE, state,
scopes), tokens encrypted at rest, one account per host, serialized refreshes, a dead grant,
revoking on the way out."""
from datetime import timedelta
from pathlib import Path
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from app import clock, crypto
from app.extensions import db
from app.google import link
from app.google.provider import tool
from app.meetings.provider import ProviderAuthError
from app.models import GoogleConnection, LinkStatus, Meeting, MeetingStatus

from tests.conftest import body_text


def connection(host) -> GoogleConnection | None:
    db.session.rollback()
    return db.session.query(GoogleConnection).filter_by(host_id=host.id).one_or_none()


def flashed(client) -> str:
    return client.get("/settings/google", follow_redirects=True).get_data(as_text=True)


def test_link_asks_narrowly_with_pkce_and_state_and_stores_tokens_encrypted(app, link_google, make_host, google):
    host = make_host()
    query = link_google(host, "free@gmail.test")
    assert query["scope"] == [f"openid email {link.CALENDAR_SCOPE}"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["redirect_uri"][0].endswith("/google/callback")
    conn = connection(host)
    assert conn.is_active and conn.google_email == "free@gmail.test" and conn.hosted_domain == ""
    assert conn.google_subject and not conn.is_workspace
    [exchange] = google.calls("/token")
    assert exchange["form"]["grant_type"] == "authorization_code" and exchange["form"]["code_verifier"]
    plaintext = [crypto.decrypt(conn.access_token_enc), crypto.decrypt(conn.refresh_token_enc)]
    dump = "".join(str(row) for table in db.metadata.sorted_tables for row in db.session.execute(table.select()).all())
    assert conn.access_token_enc in dump
    for token in plaintext:
        assert token not in dump
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        stored = b"".join(p.read_bytes() for p in (Path(path), Path(path + "-wal")) if p.exists())
        for token in plaintext:
            assert token.encode() not in stored
    # The stored token works on the host's calendar.
    assert link.access_token(conn.id) == plaintext[0]


def test_a_workspace_account_records_its_domain_and_has_no_meet_cut(link_google, make_host):
    host = make_host()
    link_google(host, "teacher@school.test")
    conn = connection(host)
    assert conn.hosted_domain == "school.test" and conn.is_workspace
    assert tool.cut_minutes(conn, 3) is None and tool.cut_minutes(conn, 2) is None


def test_a_free_account_cuts_group_calls_at_60_minutes_only(link_google, make_host):
    host = make_host()
    link_google(host, "free@gmail.test")
    conn = connection(host)
    assert tool.cut_minutes(conn, 3) == 60 and tool.cut_minutes(conn, 10) == 60
    assert tool.cut_minutes(conn, 2) is None  # the 1:1 limit is uncertain (facts §6)


def test_without_the_calendar_permission_nothing_is_linked(client, link_google, make_host, google):
    host = make_host()
    link_google(host, "free@gmail.test", granted_scopes=[])  # the calendar box unticked
    assert connection(host) is None
    assert "Googleカレンダーへの予定の作成が許可されていません" in flashed(client)


def test_cancelling_on_googles_page_says_so(client, login, make_host, google):
    host = make_host()
    login(host)
    start = client.post("/settings/google/link", form_url="/settings")
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    client.get(f"/google/callback?error=access_denied&state={state}")
    assert "連携をキャンセルしました" in flashed(client)
    assert connection(host) is None


def test_a_forged_state_is_refused_before_any_exchange(client, login, make_host, google):
    host = make_host()
    login(host)
    start = client.post("/settings/google/link", form_url="/settings")
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    code = google.authorize_code_for("free@gmail.test", redirect_uri=query["redirect_uri"][0], state="forged",
                                     code_challenge=query["code_challenge"][0])
    client.get(f"/google/callback?code={code}&state=forged")
    page = flashed(client)
    assert "Googleとの連携に失敗しました" in page and "forged" not in page
    assert connection(host) is None and google.calls("/token") == []


@pytest.mark.parametrize("kind", ["401", "429", "500", "html", "empty", "bad_json"])
def test_a_failed_code_exchange_links_nothing_and_shows_no_raw_answer(client, link_google, make_host, google, kind):
    host = make_host()
    google.inject_fault("token", kind, None)
    link_google(host)
    page = flashed(client)
    assert "Googleとの連携に失敗しました" in page or "Googleからアカウント情報を取得できませんでした" in page
    for raw in ("invalid_client", "rate_limit", "internal_failure", "Backend Error", "That’s an error", "calendar#event"):
        assert raw not in page
    assert connection(host) is None


def test_a_google_account_cannot_be_linked_to_two_hosts(client, link_google, make_host, google):
    first, second = make_host(), make_host()
    link_google(first, "free@gmail.test")
    client.post("/logout", form_url="/dashboard")
    link_google(second, "free@gmail.test")
    assert "すでに別のホストアカウントで連携されています" in flashed(client)
    assert connection(second) is None
    # The first host's grant is untouched (revoking the new token would have revoked theirs too).
    assert connection(first).is_active and google.calls("/revoke") == []
    assert link.access_token(connection(first).id, force_refresh=True)


def test_relinking_a_broken_link_keeps_when_it_applies_from(client, link_google, make_host, google):
    host = make_host()
    link_google(host)
    conn = connection(host)
    started = conn.applies_from
    link.mark_broken(conn.id, link.LinkBreak.GRANT_LOST)
    clock.advance(timedelta(hours=2))
    client.post("/logout", form_url="/dashboard")
    link_google(host)
    conn = connection(host)
    assert conn.is_active and conn.applies_from == started and conn.broken_reason == ""


def test_two_threads_at_expiry_refresh_once(app, link_google, make_host, google):
    host = make_host()
    link_google(host)
    conn = connection(host)
    conn.access_expires_at = clock.now() - timedelta(minutes=1)
    db.session.commit()
    link_id = conn.id  # read here: the test's session is not the threads' to use
    google.clear_calls()
    barrier = threading.Barrier(2)
    results = []

    def ask():
        with app.app_context():
            barrier.wait()
            try:
                results.append(link.access_token(link_id))
            except Exception as exc:  # reported to the test, which asserts
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2 and all(isinstance(r, str) for r in results), results
    assert results[0] == results[1]
    refreshes = [c for c in google.calls("/token") if c["form"]["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200
    assert crypto.decrypt(connection(host).access_token_enc) == results[0]


def test_a_dead_grant_needs_a_relink_and_emails_the_host_once(client, link_google, make_host, google, run_jobs,
                                                             smtp):
    host = make_host()
    link_google(host)
    conn = connection(host)
    google.revoke_grants("free@gmail.test")  # the host removed our app in their Google Account
    with pytest.raises(ProviderAuthError):
        link.access_token(conn.id, force_refresh=True)
    with pytest.raises(ProviderAuthError):
        link.access_token(conn.id, force_refresh=True)  # no grant left: no second refresh, no second email
    conn = connection(host)
    assert conn.status == LinkStatus.NEEDS_RELINK and conn.broken_reason == "grant_lost"
    assert len([c for c in google.calls("/token") if c["form"]["grant_type"] == "refresh_token"]) == 1
    run_jobs()
    [alert] = smtp.wait_for(1)
    assert alert["Subject"] == "【要対応】Google Meet連携の再設定をお願いします"
    text = body_text(alert)
    assert "Google Meetとの連携が切れました" in text and "/settings/google" in text
    run_jobs()
    assert len(smtp.messages) == 1


def test_finish_off_waits_for_undeleted_events_then_revokes_and_forgets(link_google, make_host, make_service,
                                                                        make_slot, google):
    host = make_host()
    link_google(host)
    conn = connection(host)
    slot = make_slot(make_service(host))
    left = Meeting(slot_id=slot.id, host_id=host.id, provider="google_meet", status=MeetingStatus.DELETE_FAILED,
                   external_id="slot1kabc")
    db.session.add(left)
    conn.status = LinkStatus.OFF
    db.session.commit()
    assert link.finish_off(host.id) is False and google.calls("/revoke") == []
    left.status = MeetingStatus.DELETED
    db.session.commit()
    assert tool.finish_off(host.id) is True
    assert connection(host) is None
    [revoke] = google.calls("/revoke")
    assert revoke["status"] == 200 and all(grant["revoked"] for grant in google.grants("free@gmail.test"))


def test_unlinking_a_dead_grant_counts_as_revoked(link_google, make_host, google):
    host = make_host()
    link_google(host)
    google.revoke_grants("free@gmail.test")
    link.revoke(connection(host))  # Google answers 400 invalid_token: nothing left to revoke
    assert google.calls("/revoke")[0]["status"] == 400
