"""Error pages, in the user's language; on the guest side (the ``booking`` blueprint: /s/, /c/, /j/ …)
in the guest layout, so a guest with a mistyped or old link never lands on the host login."""
from flask import render_template, request
from flask_wtf.csrf import CSRFError


def _error_page(code: int, **context):
    return render_template("errors/error.html", code=code, guest=request.blueprint == "booking", **context), code


def init_app(app) -> None:
    """Register the error handlers."""

    @app.errorhandler(403)
    def forbidden(error):
        return _error_page(403)

    @app.errorhandler(404)
    def not_found(error):
        return _error_page(404)

    @app.errorhandler(413)
    def too_large(error):
        return _error_page(413)

    @app.errorhandler(429)
    def too_many(error):
        return _error_page(429)

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _error_page(400, csrf=True)

    @app.errorhandler(500)
    def server_error(error):
        from app.extensions import db

        db.session.rollback()
        return _error_page(500)
