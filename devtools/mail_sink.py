"""The embedded SMTP server for local runs: accepts every message into a Maildir.

Staff read it at /staff/mailbox (like MailHog). Run: ``python -m devtools.mail_sink``.
"""
import argparse
import os
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def main() -> None:
    """Serve SMTP on the given address until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", default="instance/mailbox")
    args = parser.parse_args()
    for sub in ("cur", "new", "tmp"):  # a Maildir, even if the folder itself already exists
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    controller = Controller(Mailbox(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port}, storing into {args.maildir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
