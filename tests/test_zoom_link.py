"""Personal Zoom linking through the emulator: OAuth, tokens, OFF, webhooks, broken links."""
import hashlib
import hmac
import json
import multiprocessing
import time
from pathlib import Path
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from flask_babel import refresh
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app import clock, crypto
from app.extensions import db
from app.models import MeetingStatus, ZoomConnection, Meeting
from app.models import LinkBreak, LinkStatus
from app.meetings.provider import ProviderAuthError
from app.queue import get_queue, get_redis
from app.zoom import link

from tests.conftest import body_text


def connection(host) -> ZoomConnection | None:
    db.session.rollback()
    return db.session.query(ZoomConnection).filter_by(host_id=host.id).one_or_none()


def test_link_stores_user_plan_and_encrypted_tokens(client, link_zoom, make_host, app, zoom):
    host = make_host()
    link_zoom(host, "licensed@zoom.test")
    conn = connection(host)
    assert conn.is_active and conn.zoom_email == "licensed@zoom.test" and conn.plan_type == 2
    assert conn.zoom_user_id == zoom.user("licensed@zoom.test")["id"]
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "ON（連携中）" in page and "有料（Licensed）" in page
    assert "URLを発行・変更できます" not in page  # Zoom's daily budget is full: nothing to say about it
    # PKCE S256 and client_secret_basic were used on the token call.
    [token_call] = zoom.calls("/oauth/token")
    assert token_call["form"]["code_verifier"] and token_call["auth_scheme"].lower() == "basic"
    # No plaintext token anywhere in the database: every column of every table …
    plaintext = [crypto.decrypt(conn.access_token_enc), crypto.decrypt(conn.refresh_token_enc)]
    dump = "".join(str(row) for table in db.metadata.sorted_tables
                   for row in db.session.execute(table.select()).all())
    assert conn.access_token_enc in dump  # the row is really there, encrypted
    for token in plaintext:
        assert token not in dump
    # … nor in the SQLite files themselves (free pages and the WAL included).
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        stored = b"".join(p.read_bytes() for p in (Path(path), Path(path + "-wal")) if p.exists())
        for token in plaintext:
            assert token.encode() not in stored


def test_basic_plan_warns_about_long_services(client, link_zoom, make_host, make_service):
    host = make_host()
    make_service(host, title="90分の講座", duration_minutes=90)
    make_service(host, title="30分の相談", duration_minutes=30)
    link_zoom(host, "basic@zoom.test")
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "無料（Basic）" in page and "40分で自動的に終了" in page
    assert "90分の講座" in page and "30分の相談" not in page


def test_state_mismatch_is_rejected(client, login, make_host, zoom):
    host = make_host()
    login(host)
    start = client.post("/settings/zoom/link", form_url="/settings/zoom")
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    code = zoom.authorize_code_for("basic@zoom.test", redirect_uri=query["redirect_uri"][0],
                                   state="forged", code_challenge=query["code_challenge"][0])
    page = client.get(f"/zoom/callback?code={code}&state=forged", follow_redirects=True).get_data(as_text=True)
    assert "Zoomとの連携に失敗しました" in page
    assert connection(host) is None
    assert zoom.calls("/oauth/token") == []  # never exchanged


def test_wrong_pkce_verifier_is_rejected(client, login, make_host, zoom):
    host = make_host()
    login(host)
    start = client.post("/settings/zoom/link", form_url="/settings/zoom")
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    state = query["state"][0]
    code = zoom.authorize_code_for("basic@zoom.test", redirect_uri=query["redirect_uri"][0], state=state,
                                   code_challenge=query["code_challenge"][0])
    with client.raw.session_transaction() as session:
        key = next(k for k in session if k.endswith(state))
        data = session[key]
        data["data"]["code_verifier"] = "x" * 64  # not the verifier of the challenge sent
        session[key] = data
    page = client.get(f"/zoom/callback?code={code}&state={state}", follow_redirects=True).get_data(as_text=True)
    assert "Zoomとの連携に失敗しました" in page
    assert connection(host) is None
    assert zoom.calls("/oauth/token")[0]["status"] == 400


def test_a_zoom_account_cannot_be_linked_to_two_hosts(client, link_zoom, make_host, run_jobs, smtp):
    first, second = make_host(), make_host()
    link_zoom(first, "basic@zoom.test")
    client.post("/logout", form_url="/dashboard")
    link_zoom(second, "basic@zoom.test")
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "すでに別のホストアカウントで連携されています" in page
    assert connection(second) is None
    # Zoom keeps only the newest grant, so the first host's link is marked for relinking.
    assert connection(first).status == LinkStatus.NEEDS_RELINK
    run_jobs()
    assert smtp.wait_for(1)[0]["To"].addresses[0].addr_spec == first.email


def _refresh_in_child(app, connection_id, results):
    with app.app_context():
        db.engine.dispose(close=False)  # never share the parent's pooled connections
        try:
            results.put(("ok", link.access_token(connection_id)))
        except Exception as exc:  # reported to the parent, which asserts
            results.put(("error", repr(exc)))


def test_two_processes_refreshing_at_once_refresh_once(app, link_zoom, make_host, zoom):
    host = make_host()
    link_zoom(host)
    conn = connection(host)
    conn.access_expires_at = clock.now() - timedelta(minutes=1)  # both must refresh
    db.session.commit()
    zoom.clear_calls()
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    children = [ctx.Process(target=_refresh_in_child, args=(app, conn.id, results)) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]  # both use the one new token
    refreshes = [c for c in zoom.calls("/oauth/token") if c["form"].get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1 and refreshes[0]["status"] == 200
    assert connection(host).is_active
    # The stored token works against Zoom.
    assert link.api_for(conn.id).users_me().email == "basic@zoom.test"


def test_401_code_124_refreshes_once_and_retries_once(app, link_zoom, make_host, zoom):
    host = make_host()
    link_zoom(host)
    zoom.clear_calls()
    zoom.inject_fault("401_124", path="/v2/users/me", method="GET", times=1)
    assert link.api_for(connection(host).id).users_me().email == "basic@zoom.test"
    assert len(zoom.calls("/v2/users/me")) == 2
    assert len(zoom.calls("/oauth/token")) == 1


def test_dead_refresh_token_marks_link_broken_emails_host_and_shows_banner(
        client, app, link_zoom, make_host, zoom, run_jobs, smtp):
    host = make_host()
    link_zoom(host)
    conn = connection(host)
    # Rotate behind our back so the stored refresh token is dead (as if Zoom revoked it).
    zoom.clear_calls()
    from app.zoom.client import ZoomOAuth
    ZoomOAuth(zoom.url, zoom.client_id, zoom.client_secret).refresh(crypto.decrypt(conn.refresh_token_enc))
    with pytest.raises(ProviderAuthError):
        link.access_token(conn.id, force_refresh=True)
    conn = connection(host)
    assert conn.status == LinkStatus.NEEDS_RELINK and "連携が切れました" in conn.broken_reason_text
    run_jobs()
    [alert] = smtp.wait_for(1)
    assert alert["Subject"] == "【要対応】Zoom連携の再設定をお願いします"
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Zoom連携の再設定が必要です" in page and "再連携する" in page


# --- OFF ------------------------------------------------------------------------------------------

def issue_meeting(host, slot, conn):
    """Create a meeting on Zoom for ``slot`` and record it as issued."""
    created = link.api_for(conn.id).create_meeting(
        {"topic": slot.service.title, "type": 2, "duration": 60,
         "start_time": slot.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "timezone": "Asia/Tokyo"})
    meeting = Meeting(slot_id=slot.id, host_id=host.id, status=MeetingStatus.ISSUED,
                          external_id=str(created.id), join_url=created.join_url, issued_at=clock.now())
    db.session.add(meeting)
    db.session.commit()
    return meeting


def test_turn_off_deletes_meetings_in_each_zoom_case(client, link_zoom, make_host, make_service, make_slot,
                                                     make_booking, zoom, run_jobs):
    host = make_host()
    service = make_service(host)
    link_zoom(host)
    conn = connection(host)
    slots = [make_slot(service, starts_in=timedelta(days=d)) for d in (1, 2, 3, 4)]
    for slot in slots:
        make_booking(slot)
    normal, gone, ended, running = (issue_meeting(host, s, conn) for s in slots)
    zoom.delete_meeting_out_of_band(int(gone.external_id))   # 404 / 3001
    zoom.set_meeting_status(int(ended.external_id), "ended")  # 3007
    zoom.set_meeting_status(int(running.external_id), "started")  # 3002

    confirm = client.get("/settings/zoom/off").get_data(as_text=True)
    assert "発行済みのZoomのミーティング4件" in confirm and "影響を受ける今後のご予約（4件）" in confirm
    done = client.post("/settings/zoom/off").get_data(as_text=True)
    assert "Zoomのミーティングを3件削除し、自動送信予定だったメール" in done
    assert "開催中のため削除できませんでした" in done
    remaining = {m["id"] for m in zoom.meetings() if not m["deleted"]}
    assert int(normal.external_id) not in remaining and int(running.external_id) in remaining
    # OFF at once; the grant is kept (not revoked) only to delete the running meeting after its end.
    settings = client.get("/settings/zoom").get_data(as_text=True)
    assert "OFF（未連携）" in settings and "Zoomで削除できなかったミーティング（1件）" in settings
    assert connection(host).status == LinkStatus.OFF and zoom.calls("/oauth/revoke") == []
    statuses = {m.slot_id: m.status for m in db.session.query(Meeting).all()}
    assert statuses.pop(running.slot_id) == MeetingStatus.DELETE_FAILED
    assert set(statuses.values()) == {MeetingStatus.DELETED}
    [job_id] = ScheduledJobRegistry(queue=get_queue()).get_job_ids()  # after the lesson's end
    zoom.set_meeting_status(int(running.external_id), "waiting")  # the lesson ended
    job = Job.fetch(job_id, connection=get_redis())
    ScheduledJobRegistry(queue=get_queue()).remove(job)
    get_queue().enqueue_job(job)
    run_jobs()
    assert int(running.external_id) not in {m["id"] for m in zoom.meetings() if not m["deleted"]}
    assert connection(host) is None and len(zoom.calls("/oauth/revoke")) == 1
    assert {m.status for m in db.session.query(Meeting).all()} == {MeetingStatus.DELETED}
    assert {m.join_url for m in db.session.query(Meeting).all()} == {""}


# --- webhooks ------------------------------------------------------------------------------------

def zoom_signature(secret: str, timestamp: str, raw: bytes) -> str:
    """``x-zm-signature`` as Zoom documents it, computed here (not by the code under test):
    ``v0=`` + hex HMAC-SHA256, keyed with the Secret Token, of ``v0:<timestamp>:<raw body>``."""
    return "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()


def url_validation_answer(secret: str, plain_token: str) -> dict:
    """Zoom's expected answer to ``endpoint.url_validation``: the plain token and its hex HMAC-SHA256."""
    return {"plainToken": plain_token,
            "encryptedToken": hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()}


def post_webhook(client, app, body: dict, *, timestamp=None, secret=None):
    raw = json.dumps(body).encode()
    ts = str(int(timestamp if timestamp is not None else time.time()))
    sig = zoom_signature(secret or app.config["ZOOM_WEBHOOK_SECRET_TOKEN"], ts, raw)
    return client.post_raw("/zoom/webhook", data=raw, content_type="application/json",
                           headers={"x-zm-request-timestamp": ts, "x-zm-signature": sig})


def test_webhook_url_validation(client, app):
    response = post_webhook(client, app, {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    assert response.json == url_validation_answer(app.config["ZOOM_WEBHOOK_SECRET_TOKEN"], "abc")


def test_the_emulators_signed_webhooks_drive_the_live_endpoint(live_server, link_zoom, make_host, zoom, run_jobs,
                                                               smtp):
    """Zoom's side played by the emulator's own sender, over HTTP, against the running app."""
    host = make_host()
    link_zoom(host)
    target = f"{live_server}/zoom/webhook"
    validation = zoom.send_webhook("endpoint.url_validation", None, target)
    plain = json.loads(validation["sent"]["body"])["payload"]["plainToken"]
    assert validation["status_code"] == 200
    assert json.loads(validation["body"]) == url_validation_answer(zoom.webhook_secret_token, plain)
    # Signed with another secret, or with a flipped signature: refused, the link stays.
    payload = {"user_id": connection(host).zoom_user_id, "account_id": "a"}
    assert zoom.send_webhook("app_deauthorized", payload, target, secret_token="not-the-apps")["status_code"] == 401
    assert zoom.send_webhook("app_deauthorized", payload, target, corrupt_signature=True)["status_code"] == 401
    run_jobs()
    assert connection(host) is not None
    # The host removes the app on zoom.us: Zoom's signed notice unlinks it here.
    result = zoom.send_webhook("app_deauthorized", None, target, email="basic@zoom.test")
    assert result["status_code"] == 204, result
    sent = result["sent"]
    assert sent["headers"]["x-zm-signature"] == zoom_signature(
        zoom.webhook_secret_token, sent["headers"]["x-zm-request-timestamp"], sent["body"].encode())
    run_jobs()
    assert connection(host) is None
    assert "Zoom連携が解除されました" in [m["Subject"] for m in smtp.wait_for(1)]


def test_deauthorization_webhook(client, app, link_zoom, make_host, zoom, run_jobs, smtp):
    host = make_host()
    link_zoom(host)
    user_id = connection(host).zoom_user_id
    body = {"event": "app_deauthorized", "event_ts": 1, "payload": {"user_id": user_id, "account_id": "a"}}
    assert post_webhook(client, app, body, secret="wrong").status_code == 401
    assert post_webhook(client, app, body, timestamp=time.time() - 600).status_code == 401
    run_jobs()
    assert connection(host) is not None
    assert post_webhook(client, app, body).status_code == 204
    run_jobs()
    assert connection(host) is None
    mails = smtp.wait_for(1)
    assert mails[-1]["Subject"] == "Zoom連携が解除されました"
    assert "Zoom連携をOFFにしました" in body_text(mails[-1])


def test_meeting_deleted_webhook_marks_meeting_gone(client, app, link_zoom, make_host, make_service, make_slot,
                                                    make_booking, run_jobs):
    host = make_host()
    link_zoom(host)
    slot = make_slot(make_service(host))
    meeting = issue_meeting(host, slot, connection(host))
    body = {"event": "meeting.deleted", "payload": {"object": {"id": int(meeting.external_id)}}}
    assert post_webhook(client, app, body).status_code == 204
    run_jobs()
    db.session.rollback()
    assert db.session.get(Meeting, meeting.id).status == MeetingStatus.DELETED


def test_an_english_host_reads_why_the_link_broke_in_english(client, link_zoom, make_host, run_jobs, smtp):
    host = make_host(name="Alex Smith")
    host.locale = "en"
    db.session.commit()
    link_zoom(host)
    link.mark_broken(connection(host).id, LinkBreak.GRANT_LOST)
    assert connection(host).broken_reason == "grant_lost"  # a code, not a sentence in one language
    run_jobs()
    [alert] = smtp.wait_for(1)
    english = "The Zoom connection was lost (the authorization expired or was revoked on the Zoom side)."
    assert alert["Subject"] == "[Action required] Please reconnect your Zoom integration"
    assert english in body_text(alert)
    refresh()  # the test's one app context would keep the locale of the earlier (Japanese) requests
    page = client.get("/dashboard").get_data(as_text=True)
    assert english in page and "Zoomとの連携が切れました" not in page
