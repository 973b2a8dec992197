"""Gunicorn settings of the production web process: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Gunicorn's access log writes every request line and Referer, and its error log the URI of a request
that failed: both would hold the guests' /c/ and /j/ tokens, the password-reset tokens and the
OAuth ``code``. This logger masks them (``app.logs.redact``) in whatever format the log is
written, and the status, size, time and the rest of the path stay readable. Gunicorn also reads
this file by itself when started from this directory without ``-c``.
"""
from gunicorn.glogging import Logger

from app.logs import REDACTING_FILTER


class RedactingLogger(Logger):
    """Gunicorn's logger, with tokens masked in the access log and the error log."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            log.addFilter(REDACTING_FILTER)


logger_class = RedactingLogger
