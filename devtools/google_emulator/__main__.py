"""Serve the Google emulator in the foreground.

    python -m devtools.google_emulator --port 5070

Then set GOOGLE_AUTHORIZE_URL=http://127.0.0.1:5070/o/oauth2/v2/auth, GOOGLE_TOKEN_URL=…/token,
GOOGLE_REVOKE_URL=…/revoke and GOOGLE_CALENDAR_BASE_URL=…/calendar/v3.
"""

import argparse

from werkzeug.serving import make_server

from .app import create_emulator_app
from .state import DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devtools.google_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5070)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--redirect-uri", action="append", dest="redirect_uris",
                        help="registered redirect URI (repeatable); default: any http://127.0.0.1 or localhost URL")
    parser.add_argument("--access-token-ttl", type=float, default=DEFAULT_ACCESS_TOKEN_TTL, help="seconds")
    args = parser.parse_args(argv)
    app = create_emulator_app(client_id=args.client_id, client_secret=args.client_secret,
                              redirect_uris=args.redirect_uris, access_token_ttl=args.access_token_ttl)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"Google emulator on http://{args.host}:{server.server_port} (client_id {args.client_id})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
