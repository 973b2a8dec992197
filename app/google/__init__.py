"""Google Meet: linking a host's own Google account (OAuth), and meetings as events on their calendar."""
from flask import Blueprint

bp = Blueprint("google", __name__)

from app.google import routes  # noqa: E402,F401
