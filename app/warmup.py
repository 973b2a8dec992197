"""Make a long-running process ready before it serves: the gunicorn workers (``wsgi.py``) and
the RQ worker (``worker.py``), whose work horses are forked from it."""
import gc

from flask_babel import force_locale, get_translations
from sqlalchemy.orm import configure_mappers


def warm_up(app, templates: str = "") -> None:
    """Set up the mappers, compile the templates whose names start with ``templates`` and load
    every catalog now, then hide all of it from the garbage collector (``gc.freeze``).

    Without it, each work horse compiled and loaded what its job needed again (CPU spent before
    a job's first email), and the first request of each page in a web worker did.

    The process then holds about 150,000 objects that live as long as it does. Python's full
    collections walk them all, in a web worker every few thousand requests, while the requests
    queued behind it wait (it made the latency benchmark's maximum and a good part of its p95:
    bench/README.md). Frozen, they are never walked again, and a full collection is short.
    A forked work horse also leaves the pages holding them shared with its parent.
    """
    configure_mappers()
    with app.app_context():
        from app.auth import accounts

        accounts.dummy_hash()  # else the first failed login for an unknown email would take twice as long
        for name in app.jinja_env.list_templates(filter_func=lambda name: name.startswith(templates)):
            app.jinja_env.get_template(name)
        for locale in app.config["LANGUAGES"]:
            with force_locale(locale):
                get_translations()
    gc.freeze()
