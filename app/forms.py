"""Forms shared by every blueprint."""
from flask_wtf import FlaskForm


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for state-changing buttons (POST, never GET)."""


#: DEL and the Unicode line breaks that ``EmailMessage`` also treats as ends of a header line.
LINE_BREAKS = "\x7f\x85\u2028\u2029"


class SingleLine:
    """Refuse CR, LF, other control characters and Unicode line breaks (names end up in email headers)."""

    def __init__(self, message=None):
        self.message = message

    def __call__(self, form, field):
        from flask_babel import gettext as _
        from wtforms.validators import ValidationError

        if field.data and any(ord(ch) < 32 or ch in LINE_BREAKS for ch in field.data):
            raise ValidationError(self.message or _("改行や制御文字は使えません。1行で入力してください。"))
