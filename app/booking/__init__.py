"""The guest side: public service pages, booking, cancel links."""
from flask import Blueprint

bp = Blueprint("booking", __name__)

from app.booking import routes  # noqa: E402,F401
