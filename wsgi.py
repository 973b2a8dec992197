"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi …``."""
import os

from app import create_app
from app.warmup import warm_up
from config import Config, ProductionConfig

app = create_app(ProductionConfig if os.environ.get("APP_ENV") == "production" else Config)
warm_up(app)
