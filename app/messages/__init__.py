"""Bulk messages (メッセージ一括送信): compose, preview, send now or schedule, progress."""
from flask import Blueprint

bp = Blueprint("messages", __name__)

from app.messages import routes  # noqa: E402,F401
