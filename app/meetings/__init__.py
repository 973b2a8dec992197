"""The meetings wing: one meeting per slot on the host's video tool, and the URL emails.

Provider-neutral. It decides when a slot's meeting is created, checked, moved or deleted and
what the guests and the host are told; each video tool (``app/zoom``, ``app/google``) only
implements ``provider.VideoTool``. Modules:

- ``timing``: when the URL emails and the pre-flight run (the one place for "24 hours");
- ``tools``: the registry of video tools, and which one a service uses;
- ``retry``: the one retry policy of every call to a tool, and everything RQ;
- ``issuing``: one meeting per slot, idempotent, checked before a URL goes out;
- ``withdraw``: deleting meetings, and turning a tool OFF;
- ``planning``: reactions to bookings and slots, backfill, resend, pre-flight;
- ``switch``: a tool's link as a whole (what OFF affects, relinking, bookings made before linking);
- ``emails`` and ``notice``: the URL email, the waiting email, the host's notices and alerts, ``.ics``.
"""

from flask import Blueprint

#: The pages every tool shares (``routes``); registered by ``init_app``, not at import, since the
#: tools' clients import ``provider`` from this package.
bp = Blueprint("meetings", __name__)


def init_app(app) -> None:
    """Register the wing's email kinds (their modules register themselves on import) and pages."""
    from app.meetings import emails, notice, reminders, routes  # noqa: F401

    app.register_blueprint(bp)
