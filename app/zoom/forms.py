"""Zoom settings forms (buttons only: every state change is a POST with CSRF)."""
from app.forms import EmptyForm


class LinkForm(EmptyForm):
    """Turn the link ON (starts OAuth)."""
