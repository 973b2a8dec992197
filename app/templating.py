"""Jinja filters and globals: host-time-zone dates in Japanese formats, safe links in notes."""
import re
from datetime import timedelta

from flask import current_app, url_for
from flask_babel import get_locale, get_translations
from flask_login import current_user
from jinja2 import pass_context, pass_eval_context
from markupsafe import Markup, escape

from app import clock
from app.mail.render import WAITING_PREFIX

_URL = re.compile(r"https?://[^\s<>\"'　]+")
#: Template context keys set once per render: the (time zone, locale) dates are shown in, and
#: the catalog ``_()`` reads.
_DATES_IN = "_dates_in"
_TRANSLATIONS = "_translations"
#: ``delivery_state``'s results in this render, by the fields it shows.
_STATES_SHOWN = "_states_shown"


def _dates_in() -> tuple[str, str]:
    """The time zone and locale of this request's dates: the host's, else Tokyo; the page's language."""
    tz_name = clock.DEFAULT_TZ
    if current_user and getattr(current_user, "is_authenticated", False):
        tz_name = current_user.timezone
    return tz_name, str(get_locale() or "ja")


def _zone_and_locale(context, tz_name: str | None) -> tuple[str, str]:
    # Looked up once per render (see ``init_app``), not once per date: a page shows hundreds of
    # dates, and each lookup goes through Flask-Login's and Flask-Babel's request proxies.
    # Macros imported without context do not see it and look it up themselves.
    default_tz, locale = context.get(_DATES_IN) or _dates_in()
    return tz_name or default_tz, locale


@pass_context
def local_datetime(context, moment, tz_name: str | None = None) -> str:
    """``2026年6月20日(土) 10:00`` in the host's time zone."""
    return clock.format_datetime_local(moment, *_zone_and_locale(context, tz_name))


@pass_context
def local_date(context, moment, tz_name: str | None = None) -> str:
    """``2026年6月20日(土)`` in the host's time zone."""
    return clock.format_date_local(moment, *_zone_and_locale(context, tz_name))


@pass_context
def local_time(context, moment, tz_name: str | None = None) -> str:
    """``10:00`` in the host's time zone."""
    return clock.format_time_local(moment, *_zone_and_locale(context, tz_name))


@pass_context
def local_range(context, start, end=None, tz_name: str | None = None, minutes: int | None = None) -> str:
    """A slot's time for hosts, ``2026年6月20日(土) 23:00〜24:00``, in the host's time zone.

    ``{{ slot.starts_at|local_range(slot.ends_at) }}``, or ``local_range(minutes=row.duration_minutes)``
    for a row without ``ends_at``. A range ending at midnight ends at 「24:00」, one ending later at
    「翌00:30」 (``clock.format_end_local``), never 「23:00〜00:00」.
    """
    if end is None and minutes is not None:
        end = start + timedelta(minutes=minutes)
    return clock.format_range_local(start, end, *_zone_and_locale(context, tz_name))


@pass_context
def local_end(context, end, start, tz_name: str | None = None) -> str:
    """The end time alone, next to a start shown elsewhere: ``{{ slot.ends_at|local_end(slot.starts_at) }}``
    → 「11:00」, 「24:00」 or 「翌00:30」."""
    return clock.format_end_local(start, end, *_zone_and_locale(context, tz_name))


@pass_context
def guest_datetime(context, start, tz_name: str | None = None, end=None, with_zone: bool = True) -> str:
    """A lesson time for guests: the host's zone in words, and Japan time too when that differs.

    ``{{ slot.starts_at|guest_datetime(tz, slot.ends_at) }}`` → 「ロサンゼルス時間 2026年6月20日(土)
    10:00〜11:00（日本時間 2026年6月21日(日) 02:00〜03:00）」 (see ``clock.format_for_guests``).
    In HTML the Japan time is a ``span.also-japan``, which pages show on a line of its own.
    """
    tz_name, locale = _zone_and_locale(context, tz_name)
    when, japan = clock.guest_time_parts(start, tz_name, locale, end, with_zone=with_zone)
    if not japan or not context.eval_ctx.autoescape:
        return when + japan
    return Markup(f'{escape(when)}<span class="also-japan">{escape(japan)}</span>')


@pass_context
def zone_label(context, tz_name: str | None = None) -> str:
    """The time zone in words in this render's language (the host's by default): 「ロサンゼルス時間」."""
    return clock.zone_label(*_zone_and_locale(context, tz_name))


@pass_context
def meeting_failure(context, failure, tz_name: str | None = None, tool: str | None = None) -> str:
    """Why a meeting has no URL, for the host; after Zoom's daily limit, when it comes back.

    ``tool`` names the video tool (default: the render's ``tool_name``, or its ``meeting``'s).

    Zoom gives the 100 creates back at 00:00 UTC: 09:00 in Tokyo, 16:00 or 17:00 in Los Angeles,
    so the time is the host's (``tz_name``, default this render's zone), not part of the text.
    """
    if failure is None:
        return ""
    from app.models import MeetingFailure
    from app.zoom.client import next_utc_midnight

    meeting = context.get("meeting")
    tool = tool or context.get("tool_name") or (meeting.tool_name if meeting is not None else "Zoom")
    if failure != MeetingFailure.DAILY_LIMIT:
        return str(failure.text(tool))
    return _translations(context).ugettext("%(why)s上限は%(time)sに戻ります。") % {
        "why": failure.text(tool), "time": local_time(context, next_utc_midnight(), tz_name)}


def _translations(context):
    # Flask-Babel's own template callables find the catalog through four request-local lookups
    # per string; a page has a hundred strings or more. Context-less macros look it up themselves.
    return context.get(_TRANSLATIONS) or get_translations()


@pass_context
def _gettext(context, message: str) -> str:
    return _translations(context).ugettext(message)


def _format_translation(eval_ctx, rv: str, variables: dict) -> str:
    if eval_ctx.autoescape:
        rv = Markup(rv)
    # Always a format string, as newstyle gettext makes it (``%%`` is ``%``); one without any
    # ``%`` formats to itself.
    return rv % variables if variables or "%" in rv else rv


@pass_context
def _translate(context, message: str, **variables) -> str:
    """``_()`` in templates: what Jinja's i18n ``_`` does with newstyle gettext, in one call.

    Jinja's ``_`` calls ``gettext``, which calls the installed callable, each through
    ``Context.call``: three calls per string add up on pages with a hundred strings or more.
    Templates rendered with ``render_template`` get ``_translator``'s instead; this one serves
    macros imported without context.
    """
    return _format_translation(context.eval_ctx, _translations(context).ugettext(message), variables)


def _translator(translations):
    """``_()`` for one render, bound to its catalog: what ``_translate`` does, without the context.

    ``Context.call`` gives a ``pass_context`` callable a copy of the context (``derived``) in a
    loop or after a ``{% set %}`` in a block, for every string. The eval context is passed
    as it is (autoescape: ``Markup`` in HTML, plain text in ``.txt`` emails).
    """
    ugettext = translations.ugettext

    @pass_eval_context
    def translate(eval_ctx, message: str, **variables) -> str:
        return _format_translation(eval_ctx, ugettext(message), variables)

    return translate


def _per_render() -> dict:
    # Read once per render. Emails render inside ``force_locale``, so these are the email's.
    translations = get_translations()
    return {_DATES_IN: _dates_in(), _TRANSLATIONS: translations, "_": _translator(translations), _STATES_SHOWN: {}}


def email_renderer():
    """Render the templates of one email: ``render(name, **context)`` with that context and this
    module's per-render values only, read once for all of the email's templates.

    Flask's ``render_template`` also runs every context processor, which serve pages (the
    signed-in host's banners, ``request``, ``session``, ``config``): an email reads none of them,
    and a worker renders thousands of emails a minute at the top of the hour.
    """
    env, per_render = current_app.jinja_env, _per_render()

    def render(name: str, **context) -> str:
        return env.get_template(name).render({**per_render, _STATES_SHOWN: {}, **context})  # a memo per template

    return render


@pass_context
def _ngettext(context, singular: str, plural: str, n: int) -> str:
    return _translations(context).ungettext(singular, plural, n)


@pass_context
def _pgettext(context, message_context: str, message: str) -> str:
    return _translations(context).upgettext(message_context, message)


@pass_context
def _npgettext(context, message_context: str, singular: str, plural: str, n: int) -> str:
    return _translations(context).unpgettext(message_context, singular, plural, n)


@pass_context
def delivery_state(context, delivery) -> Markup:
    """An outbox row's state for hosts: 「送信済み 11月27日(金) 10:00」, 「再試行中: why」, ….

    A filter rather than a macro: a guest list shows two per row, and a macro call costs about
    five times as much. Worked out once per render for equal fields: a slot's guests mostly
    share their URL email's state (「送信予定」 at the same time).
    """
    if delivery is None:
        return Markup('<span class="muted">—</span>')
    shown = context.get(_STATES_SHOWN)
    if shown is None:  # a macro imported without context
        return _delivery_state(context, delivery)
    key = (delivery.status, delivery.due_at, delivery.sent_at, delivery.last_error, _bounced(delivery))
    state = shown.get(key)
    if state is None:
        state = shown[key] = _delivery_state(context, delivery)
    return state


def _delivery_state(context, delivery) -> Markup:
    say = _translations(context).ugettext
    status = delivery.status.value
    # f-strings (``Markup.format`` costs as much as the rest of a row). The catalog's texts are
    # markup-safe as ``_()`` in templates treats them, and dates are ours. The SMTP server's own
    # words are for staff (/staff/deliveries); hosts read what it means.
    if _bounced(delivery):
        # It left us, then a bounce (DSN) came back: as undeliverable as a 5xx, never 「送信済み」.
        return Markup(f'<span class="error">{say(_UNDELIVERABLE)}</span><br><span class="muted">{say(_BOUNCED)}</span>')
    if status == "sent":
        return Markup(f'{say("送信済み")} <span class="muted">{local_datetime(context, delivery.sent_at)}</span>')
    if status == "pending" and delivery.last_error.startswith(WAITING_PREFIX):
        return Markup(_waiting_state(say))
    if status == "pending":
        state = f'{say("送信予定")} <span class="muted">{local_datetime(context, delivery.due_at)}</span>'
        if delivery.last_error:
            state += f'<br><span class="error">{say("再試行中")}: {say(_RETRYING)}</span>'
        return Markup(state)
    if status == "sending":
        return Markup(say("送信中"))
    if status == "failed" and _REFUSAL.search(delivery.last_error):
        # Refused for good (5xx at send time): the address does not take mail; not so a failure
        # that lasted through every retry (a server down, 4xx), which may pass.
        return Markup(f'<span class="error">{say("送信失敗")}: {say(_UNDELIVERABLE)}</span>'
                      f'<br><span class="muted">{say(_REFUSED)}</span>')
    if status == "failed":
        return Markup(f'<span class="error">{say("送信失敗")}: {say(_NOT_SENT)}</span>')
    return Markup(f'<span class="muted">{say("取り消し")}</span>')


def _waiting_state(say) -> str:
    """A URL email waiting for its meeting, in a guest row: that it goes out on its own (the slot's
    Zoom state above the list says why)."""
    return (f'<span class="state state-off">{say(_WAITING)}</span>'
            f'<br><span class="muted">{say(_WAITING_NEXT)}</span>')


def N_(message: str) -> str:
    """Marks a message for extraction (pybabel's default ``N_`` keyword) where it is translated later."""
    return message


_WAITING = N_("URL準備中")
_RETRYING = N_("一時的に送信できませんでした。自動で再送します。")
_REFUSED = N_("宛先のメールサーバーが受け取りを拒否しました。メールアドレスに誤りがないかご確認ください。")
_NOT_SENT = N_("送信できませんでした。")
_UNDELIVERABLE = N_("このメールアドレスには届きません（宛先不明）")
_BOUNCED = N_("送信後、宛先のメールサーバーから届けられなかったとの通知がありました。メールアドレスに誤りがないかご確認ください。")
#: A 5xx reply in an SMTP error as the outbox records it (``…: (550, b'5.1.1 no such user')``).
_REFUSAL = re.compile(r"\(5\d\d,")
_WAITING_NEXT = N_("発行でき次第、自動で送信")


def _bounced(delivery) -> bool:
    """A bounce (DSN) came back for the email (``app.mail.bounces``); rows without the column: no."""
    return getattr(delivery, "bounced_at", None) is not None


class UrlPattern:
    """An endpoint's URL for any id, for lists: ``url_for`` once, then the id filled in per row.

    ``url_for`` is not cheap (the URL map, defaults, quoting): a list of 20 slots with
    three links each spends more on them than on the rest of its rows. The id argument must
    take an ``int`` (the ``<int:…>`` converter writes it as plain digits); the URL is built
    with a marker in its place and split there, so every other part is ``url_for``'s own.
    """

    _MARKER = 987_654_321_012_345

    def __init__(self, endpoint: str, id_arg: str, **values):
        url = url_for(endpoint, **{id_arg: self._MARKER}, **values)
        self._prefix, self._suffix = url.split(str(self._MARKER))  # exactly one marker, or ValueError

    def __call__(self, id_value: int) -> str:
        """The URL for this id (an ``int``, as the endpoint's converter expects)."""
        return f"{self._prefix}{int(id_value)}{self._suffix}"


def number(value: int) -> str:
    """``1,000``: a count with thousands separators."""
    return f"{value:,}"


def linkify(text: str) -> Markup:
    """Escape plain text, turn URLs into links and line breaks into ``<br>``."""
    parts, last = [], 0
    for match in _URL.finditer(text or ""):
        parts.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        parts.append(Markup(f'<a href="{url}" rel="noopener noreferrer">{url}</a>'))
        last = match.end()
    parts.append(escape((text or "")[last:]))
    return Markup("").join(parts).replace("\n", Markup("<br>\n"))


def has_url(text: str) -> bool:
    """True when the text contains an http(s) URL."""
    return bool(_URL.search(text or ""))


def init_app(app) -> None:
    """Register the filters and template globals."""
    from app.booking.carriers import carrier_guidance
    from app.meetings.timing import URL_LEAD_HOURS
    from app.meetings.tools import plan_cut_minutes
    from app.zoom.client import next_utc_midnight

    app.jinja_env.filters.update(
        local_datetime=local_datetime, local_date=local_date, local_time=local_time, linkify=linkify,
        number=number, delivery_state=delivery_state, guest_datetime=guest_datetime,
        meeting_failure=meeting_failure, local_range=local_range, local_end=local_end,
    )
    app.context_processor(_per_render)
    # Instead of Flask-Babel's (installed by ``babel.init_app``, which runs before this).
    app.jinja_env.install_gettext_callables(gettext=_gettext, ngettext=_ngettext, newstyle=True,
                                            pgettext=_pgettext, npgettext=_npgettext)
    app.jinja_env.globals["_"] = _translate
    app.jinja_env.globals.update(
        # Anything but the real Zoom is the sandbox (the local emulator): say so on every page.
        zoom_sandbox=lambda: not current_app.config["ZOOM_OAUTH_BASE_URL"].startswith("https://zoom.us"),
        now=clock.now,
        get_locale=get_locale,
        url_pattern=UrlPattern,
        zone_label=zone_label,
        # When Zoom gives the daily create/update budget back (00:00 UTC): ``|local_time`` shows it.
        zoom_budget_reset=next_utc_midnight,
        # Hours before the start the URL email goes out (``meetings.timing``): never a written "24".
        url_lead_hours=URL_LEAD_HOURS,
        plan_cut_minutes=plan_cut_minutes,
        # The booked page's 「受信設定」 steps for a carrier address (app.booking.carriers).
        carrier_guidance=carrier_guidance,
    )
