"""A local emulator of the Google parts the product uses (OAuth 2.0, Calendar v3 events with Meet links).

Google cannot be reached from development or CI machines, so tests and ``python -m
devtools.google_emulator`` talk to this instead. See ``app.py`` for what it serves, ``server.py``
for driving it from Python, and ``contract.py`` for checking requests and responses against the
Calendar discovery document that google-api-python-client ships.
"""

from .app import create_emulator_app
from .server import GoogleEmulatorServer

__all__ = ["GoogleEmulatorServer", "create_emulator_app"]
