"""Services (サービス), their slots (開催日時) and host notes — the host's side of the catalog."""
from flask import Blueprint

bp = Blueprint("services", __name__)

from app.services import routes  # noqa: E402,F401
