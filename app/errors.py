"""Error pages, in the user's language."""
from flask import render_template
from flask_wtf.csrf import CSRFError


def init_app(app) -> None:
    """Register the error handlers."""

    @app.errorhandler(403)
    def forbidden(error):
        return render_template("errors/error.html", code=403), 403

    @app.errorhandler(404)
    def not_found(error):
        return render_template("errors/error.html", code=404), 404

    @app.errorhandler(413)
    def too_large(error):
        return render_template("errors/error.html", code=413), 413

    @app.errorhandler(429)
    def too_many(error):
        return render_template("errors/error.html", code=429), 429

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/error.html", code=400, csrf=True), 400

    @app.errorhandler(500)
    def server_error(error):
        from app.extensions import db

        db.session.rollback()
        return render_template("errors/error.html", code=500), 500
