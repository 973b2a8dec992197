"""Host accounts: sign up, log in and out, reset a forgotten password."""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import routes  # noqa: E402,F401
