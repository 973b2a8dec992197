"""Forms shared by every blueprint."""
from flask_wtf import FlaskForm


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for state-changing buttons (POST, never GET)."""


class SingleLine:
    """Refuse CR, LF and other control characters (names end up in email headers)."""

    def __init__(self, message=None):
        self.message = message

    def __call__(self, form, field):
        from flask_babel import gettext as _
        from wtforms.validators import ValidationError

        if field.data and any(ord(ch) < 32 or ord(ch) == 127 for ch in field.data):
            raise ValidationError(self.message or _("改行や制御文字は使えません。1行で入力してください。"))
