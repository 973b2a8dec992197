"""Forms shared by every blueprint."""
from flask_wtf import FlaskForm


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for state-changing buttons (POST, never GET)."""
