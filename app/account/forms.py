"""The account settings form."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.validators import DataRequired


class AccountSettingsForm(FlaskForm):
    #: Choices are set per request (in the reader's language); ``validate_choice`` is off so an
    #: unknown zone gets the Japanese message of ``routes.settings`` rather than WTForms' English one.
    timezone = SelectField(_l("タイムゾーン"), validate_choice=False,
                           validators=[DataRequired(_l("タイムゾーンを選んでください。"))])
