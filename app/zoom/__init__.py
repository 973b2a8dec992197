"""Personal Zoom linking: the settings page (ON/OFF), OAuth, the webhook, and meetings."""
from flask import Blueprint

bp = Blueprint("zoom", __name__)

from app.zoom import routes  # noqa: E402,F401
