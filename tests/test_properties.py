"""Properties over arbitrary input (hypothesis): the placeholder renderer, the single-line
validator, linkify and the Retry-After parser never raise, never evaluate, and do exactly
what they say for every string, not just the examples we thought of.
"""
import re
from datetime import datetime, timezone
from types import SimpleNamespace
from email.utils import format_datetime

from flask import render_template_string
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from wtforms.validators import ValidationError

from app.forms import SingleLine
from app.models import DeliveryStatus
from app.messages.bulk import PLACEHOLDERS, fill, unknown_placeholders
from app.templating import linkify
from app.zoom.client import parse_retry_after

#: A modest budget so the file runs in a few seconds, and no example database written into the
#: work tree. The conftest's autouse fixture is function-scoped but inert here (no app is used).
properties = settings(max_examples=200, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])

KNOWN = sorted(PLACEHOLDERS)
#: Template syntax a host might type (or an attacker try): all of it must arrive literally.
TEMPLATE_SYNTAX = ["{{7*7}}", "{{ config }}", "{% for x in range(3) %}x{% endfor %}", "{0.__class__}",
                   "{guest_name.__class__}", "{guest_name!r}", "{guest_name:>10}", "%(guest_name)s", "${7*7}",
                   "<%= 7*7 %>", "{{''.__class__.__mro__}}", "{", "}", "{}", "{{", "}}"]
values_strategy = st.fixed_dictionaries({name: st.text(max_size=20) for name in KNOWN})
unknown_names = st.from_regex(r"[A-Za-z_]{1,12}", fullmatch=True).filter(lambda n: n not in PLACEHOLDERS)
#: Text that cannot take part in a placeholder (no braces, half- or full-width).
plain = st.text(max_size=15).map(lambda t: "".join(ch for ch in t if ch not in "{}｛｝"))
segments = st.lists(st.one_of(
    plain.map(lambda t: ("plain", t)),
    st.sampled_from(KNOWN).map(lambda n: ("known", n)),
    unknown_names.map(lambda n: ("unknown", n)),
), max_size=12)


# --- placeholders ------------------------------------------------------------------------------------

@properties
@given(text=st.text(), values=values_strategy)
@example(text="".join(TEMPLATE_SYNTAX), values={name: "{{7*7}}" for name in KNOWN})
def test_fill_never_raises_and_without_values_changes_nothing(text, values):
    assert isinstance(fill(text, values), str)
    assert fill(text, {}) == text  # template syntax is never evaluated: it stays as typed
    assert unknown_placeholders(text) == sorted(set(unknown_placeholders(text)))


@properties
@given(parts=segments, values=values_strategy)
def test_known_placeholders_are_replaced_exactly_and_unknown_ones_reported(parts, values):
    text = "".join(t if kind == "plain" else "{%s}" % t for kind, t in parts)
    expected = "".join(values[t] if kind == "known" else (t if kind == "plain" else "{%s}" % t) for kind, t in parts)
    # One pass only: a value that itself looks like a placeholder or a template stays literal.
    assert fill(text, values) == expected
    assert unknown_placeholders(text) == sorted({"{%s}" % t for kind, t in parts if kind == "unknown"})


@properties
@given(syntax=st.lists(st.sampled_from(TEMPLATE_SYNTAX), min_size=1, max_size=6), values=values_strategy)
def test_template_syntax_arrives_literally(syntax, values):
    text = " ".join(syntax)
    assert fill(text, values) == text
    assert unknown_placeholders(text) == []


# --- SingleLine ------------------------------------------------------------------------------------

class _Field:
    def __init__(self, data):
        self.data = data


def single_line_accepts(value: str) -> bool:
    try:
        SingleLine()(None, _Field(value))
    except ValidationError:
        return False
    return True


CONTROL = st.characters(max_codepoint=31) | st.sampled_from("\x7f\x85\u2028\u2029")
#: Unicode line breaks beyond the control range, refused too (EmailMessage breaks header lines on them).
LINE_SEPARATORS = "\x85\u2028\u2029"
ordinary = st.text(st.characters(min_codepoint=32, exclude_characters="\x7f" + LINE_SEPARATORS,
                                 exclude_categories=("Cs",)))


@properties
@given(before=st.text(), control=CONTROL, after=st.text())
@example(before="件名", control="\r", after="\nBcc: evil@example.com")
def test_single_line_refuses_any_control_character(before, control, after):
    assert not single_line_accepts(before + control + after)


@properties
@given(value=ordinary)
@example(value="山田 花子 <yamada@example.com> {{7*7}}")
def test_single_line_accepts_everything_else(value):
    assert single_line_accepts(value)


# --- linkify ----------------------------------------------------------------------------------------

_GENERATED = re.compile(r'<a href="[^"<>]*" rel="noopener noreferrer">|</a>|<br>')
urls = st.from_regex(r"https?://[a-z0-9.-]{1,20}(/[A-Za-z0-9._~%!$&()*+,;=:@/?#-]{0,30})?", fullmatch=True)
no_url_text = st.text(max_size=30).filter(lambda t: "http" not in t)


@properties
@given(text=st.text())
@example(text='<script>alert(1)</script> https://x.example/"><img src=x onerror=alert(1)> javascript:alert(1)')
def test_linkify_output_has_no_markup_from_its_input(text):
    html = str(linkify(text))
    assert "<" not in _GENERATED.sub("", html)  # every "<" is one of the tags linkify writes
    for href in re.findall(r'<a href="([^"]*)"', html):
        assert href.startswith(("http://", "https://"))


@properties
@given(parts=st.lists(st.one_of(no_url_text.map(lambda t: ("text", t)), urls.map(lambda u: ("url", u))),
                      max_size=8))
def test_linkify_links_every_http_url(parts):
    text = " ".join(t for _, t in parts)
    html = str(linkify(text))
    for kind, value in parts:
        if kind == "url":
            assert f'<a href="{escape(value)}" rel="noopener noreferrer">{escape(value)}</a>' in html


# --- Retry-After --------------------------------------------------------------------------------------

NOW = datetime(2026, 6, 20, 1, 0, tzinfo=timezone.utc)
retry_after_values = st.one_of(
    st.none(), st.text(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9).map(str),
    st.integers(min_value=0, max_value=10**8).map(str),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes(min_value=datetime(1900, 1, 1), timezones=st.just(timezone.utc)).map(
        lambda d: format_datetime(d, usegmt=True)),
)


@properties
@given(value=retry_after_values)
@example(value="2026-06-21T00:00:00Z")
@example(value="Sat, 20 Jun 2026 01:00:30 GMT")
def test_parse_retry_after_never_raises(value):
    moment = parse_retry_after(value, now=NOW)
    assert moment is None or moment.tzinfo is not None


@properties
@given(value=st.sampled_from(["inf", "Infinity", "-inf", "1e300", "9" * 20]))
def test_parse_retry_after_survives_absurd_numbers(value):
    moment = parse_retry_after(value, now=NOW)
    assert moment is None or moment.tzinfo is not None


_MOMENTS = [datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc), datetime(2026, 11, 27, 1, 0, 30, tzinfo=timezone.utc),
            datetime(2026, 12, 1, 9, 15, tzinfo=timezone.utc)]
_deliveries = st.builds(
    lambda status, due_at, sent_at, last_error: SimpleNamespace(
        status=status, due_at=due_at, sent_at=sent_at if status == DeliveryStatus.SENT else None, last_error=last_error),
    st.sampled_from(list(DeliveryStatus)), st.sampled_from(_MOMENTS), st.sampled_from(_MOMENTS),
    st.sampled_from(["", "421 try again", "<b>550</b> & no"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.none(), _deliveries), max_size=12))
def test_a_page_shows_each_email_state_as_it_would_alone(app, deliveries):
    """``delivery_state`` remembers states within a render: never one row's state for another's."""
    template = "{% for d in rows %}{{ d|delivery_state }}|{% endfor %}"
    with app.test_request_context("/"):
        together = render_template_string(template, rows=deliveries).split("|")[:-1]
        alone = [render_template_string(template, rows=[d])[:-1] for d in deliveries]
    assert together == alone


#: Subjects as the product writes them: 【…】, a host's title (Japanese, ASCII, emoji, long words), a date.
subject_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                              blacklist_characters="\x85"),
                       min_size=1, max_size=160).map(lambda s: " ".join(s.split())).filter(bool)


@properties
@given(subject=subject_text)
@example(subject="【お申し込み完了】" + " ".join(("<script>alert(1)</script>", "{{7*7}}", "{{ config }}")))
@example(subject="a" * 75)
@example(subject="=?utf-8?b?5a6M5LqG?= literally")
def test_a_subject_arrives_as_written_in_lines_that_fit(subject):
    """Whatever the subject, the wire carries it in header lines of at most 78 characters, and a
    mail reader decodes exactly the subject written (no space added where a line was folded)."""
    from email import message_from_bytes, policy
    from email.message import Message

    from app.mail.render import subject_header
    from app.mail.smtp import WIRE

    message = Message()
    message["Subject"] = subject_header(subject)
    message.set_payload("")
    wire = message.as_bytes(policy=WIRE)
    assert all(len(line) <= 78 for line in wire.split(b"\r\n\r\n")[0].split(b"\r\n"))
    assert str(message_from_bytes(wire, policy=policy.default)["Subject"]) == subject


#: Email bodies: any text (line breaks of every kind, "From " at a line start, dots, emoji).
body_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@properties
@given(text=body_text, html=body_text, subject=subject_text, to_name=st.text(max_size=30),
       attachments=st.lists(st.tuples(st.sampled_from(["invite.ics", "予定.ics", "a b.bin"]), st.binary(max_size=300),
                                      st.sampled_from([("text", "calendar"), ("application", "octet-stream")])),
                            max_size=2))
@example(text="From the host\n.\n", html="", subject="a", to_name="", attachments=[])
def test_a_message_goes_on_the_wire_as_the_email_package_writes_it(app, text, html, subject, to_name, attachments):
    """``wire_bytes`` writes every message the product builds exactly as the email package's own
    generator does (``as_bytes``), whatever its text, subject, recipient's name and attachments."""
    from app.mail.render import RenderedEmail, ReplyHost, build_message
    from app.mail.smtp import WIRE, _flattened

    files = tuple((name, content.decode("utf-8", "replace").encode("utf-8") if kind == "text" else content,
                   kind, subtype) for name, content, (kind, subtype) in attachments)
    rendered = RenderedEmail(subject, text, html, files, ReplyHost("ホスト", "host@example.com"), "ホスト（予約）")
    delivery = SimpleNamespace(to_name=" ".join(to_name.split()), to_email="guest@example.com", message_id=None)
    with app.app_context():
        message = build_message(delivery, rendered)
    # ``wire_bytes``'s own writing, not its fallback to the generator: it must not be None.
    assert _flattened(message) == message.as_bytes(policy=WIRE)
