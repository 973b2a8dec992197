"""The host's account settings: the time zone they see and enter times in (name, contact and closing
the account come here next)."""
from flask import Blueprint

bp = Blueprint("account", __name__)

from app.account import routes  # noqa: E402,F401
