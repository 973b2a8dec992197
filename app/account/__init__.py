"""The host's account settings: profile, contact address, notices, language and time zone, password,
login address (changed through a link mailed to the new one) and closing the account."""
from flask import Blueprint

bp = Blueprint("account", __name__)

from app.account import routes  # noqa: E402,F401
