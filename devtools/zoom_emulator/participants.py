"""Control API: play participants joining and leaving a meeting (signed attendance webhooks)."""
from flask import Blueprint

#: Under the emulator's control prefix (``/_emulator/``), like the other control routes.
participants = Blueprint("participants", __name__, url_prefix="/_emulator/participants")
