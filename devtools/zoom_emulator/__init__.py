"""A local emulator of the Zoom parts the product uses (OAuth, users/me, meetings, webhooks).

Zoom cannot be reached from development or CI machines, so tests and ``python -m
devtools.zoom_emulator`` talk to this instead. See ``app.py`` for what it serves and
``server.py`` for driving it from Python; ``contract.py`` checks requests and responses
against Zoom's OpenAPI specs in ``../shared/zoom-openapi``.
"""

from .app import create_emulator_app
from .server import EmulatorServer, ServerThread

__all__ = ["EmulatorServer", "ServerThread", "create_emulator_app"]
