"""Serve the Zoom emulator in the foreground.

    python -m devtools.zoom_emulator --port 5050 --client-id ID --client-secret SECRET --webhook-secret TOKEN

Then set ZOOM_OAUTH_BASE_URL=http://127.0.0.1:5050 and ZOOM_API_BASE_URL=http://127.0.0.1:5050/v2.
"""

import argparse

from werkzeug.serving import make_server

from .app import create_emulator_app
from .state import DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_SECRET_TOKEN


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devtools.zoom_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--webhook-secret", default=DEFAULT_WEBHOOK_SECRET_TOKEN, help="the app's webhook Secret Token")
    parser.add_argument("--redirect-uri", action="append", dest="redirect_uris",
                        help="allowed redirect URL (repeatable); default: any http://127.0.0.1 or localhost URL")
    parser.add_argument("--access-token-ttl", type=int, default=DEFAULT_ACCESS_TOKEN_TTL, help="seconds")
    args = parser.parse_args(argv)
    app = create_emulator_app(
        client_id=args.client_id, client_secret=args.client_secret, webhook_secret_token=args.webhook_secret,
        redirect_uris=args.redirect_uris, access_token_ttl=args.access_token_ttl,
    )
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"Zoom emulator on http://{args.host}:{server.server_port} (client_id {args.client_id})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
