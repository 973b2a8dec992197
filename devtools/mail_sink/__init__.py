"""The embedded SMTP server for local runs: accepts every message into a Maildir.

Staff read it at /staff/mailbox (like MailHog). Run: ``python -m devtools.mail_sink``.

It can also play a distant relay (a cloud email service, a provider's smarthost), which answers
each message in tens to hundreds of milliseconds and limits how many connections a client opens:

- ``--latency-ms`` delays the reply to the end of each message's DATA (per message: where a relay
  spends its time, queueing the message and often scanning it before its 250);
- ``--command-latency-ms`` also delays the reply to every other command (MAIL, RCPT, RSET,
  NOOP), one after another: a slow server, not a network round trip (commands a client
  pipelines each wait too, where over a network they would share one round trip);
- ``--max-connections`` answers a connection over the limit ``421 4.7.0 Too many connections``
  and closes it, as relays do.

It offers PIPELINING (RFC 2920), as relays do (``Pipelining``). The options default to off (0),
the sink's old behaviour. Each connection waits on its own: a delay on one
never holds the others up (asyncio), so N connections at a latency of L ms accept at most
N × 1000 / L messages a second, like a relay.
"""
import argparse
import asyncio
import os
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

from devtools.mail_sink.late_bounce import LateBounces
from devtools.mail_sink.wrapping import HandlerWrapper

#: The reply of a relay to a connection over its limit (RFC 5321 4.3.2: 421 closes the channel;
#: RFC 3463 4.7.0: a security or policy status). A client is meant to come back later.
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections"

#: Commands whose reply ``command_latency`` delays (EHLO: only its first hook call; aiosmtpd calls
#: the EHLO hook a second time with the reply lines built).
_DELAYED_COMMANDS = {"HELO", "EHLO", "MAIL", "RCPT", "RSET", "NOOP"}


@dataclass
class RelayBehaviour:
    """How the sink plays a distant relay; the default is the plain local sink."""

    #: Seconds before the reply to the end of each message (its DATA).
    latency: float = 0.0
    #: Seconds before the reply to every other command.
    command_latency: float = 0.0
    #: Connections accepted at once; 0 = no limit.
    max_connections: int = 0
    #: Connections open now (a refused one until it is closed), how many were refused with 421,
    #: and the most served at once (read by tests and benchmarks).
    open: int = 0
    refused: int = 0
    most_open: int = 0


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP server, replying late and refusing connections over a limit (``RelayBehaviour``).

    The counters are touched only from the controller's event loop thread, so they need no lock.
    """

    def __init__(self, handler, *, relay: RelayBehaviour, **kwargs):
        super().__init__(handler, **kwargs)
        self.relay = relay
        self._counted = False
        self._refuse = False

    def connection_made(self, transport) -> None:
        if not self._counted:  # a STARTTLS upgrade calls this again for the same connection
            self._counted = True
            relay = self.relay
            relay.open += 1
            self._refuse = bool(relay.max_connections) and relay.open > relay.max_connections
            if not self._refuse:
                relay.most_open = max(relay.most_open, relay.open)
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._counted:
            self._counted = False
            self.relay.open -= 1
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refuse:
            self.relay.refused += 1
            await self.push(TOO_MANY_CONNECTIONS)
            self.transport.close()
            return
        await super()._handle_client()

    async def _call_handler_hook(self, command: str, *args):
        if command == "DATA" and self.relay.latency:
            await asyncio.sleep(self.relay.latency)
        elif (command in _DELAYED_COMMANDS and self.relay.command_latency
              and not (command == "EHLO" and len(args) > 1)):
            await asyncio.sleep(self.relay.command_latency)
        return await super()._call_handler_hook(command, *args)


class Pipelining(HandlerWrapper):
    """An aiosmtpd handler that also offers PIPELINING (RFC 2920), as production relays do.

    aiosmtpd already serves commands sent together: it reads one command line at a time from
    what arrived and answers each in order. It only does not say so in its EHLO reply.
    """

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class RelayController(Controller):
    """A ``Controller`` whose connections are ``RelaySMTP`` sharing one ``RelayBehaviour``."""

    def __init__(self, handler, relay: RelayBehaviour | None = None, **kwargs):
        self.relay = relay or RelayBehaviour()
        super().__init__(handler, **kwargs)

    def factory(self):
        return RelaySMTP(self.handler, relay=self.relay, **self.SMTP_kwargs)


def main() -> None:
    """Serve SMTP on the given address until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", default="instance/mailbox")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay the reply to the end of each message by this much (per message; default 0)")
    parser.add_argument("--command-latency-ms", type=float, default=0.0,
                        help="delay the reply to every other command (EHLO, MAIL, RCPT …) by this much (default 0)")
    parser.add_argument("--max-connections", type=int, default=0,
                        help="answer connections over this many '421 4.7.0 Too many connections' (default 0: no limit)")
    args = parser.parse_args()
    for sub in ("cur", "new", "tmp"):  # a Maildir, even if the folder itself already exists
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    relay = RelayBehaviour(latency=args.latency_ms / 1000, command_latency=args.command_latency_ms / 1000,
                           max_connections=args.max_connections)
    controller = RelayController(Pipelining(Mailbox(args.maildir)), relay, hostname=args.host, port=args.port)
    controller.handler = LateBounces(controller.handler)  # unknown-…@ and @bounce.test bounce later (late_bounce.py)
    controller.start()
    playing = ""
    if relay.latency or relay.command_latency or relay.max_connections:
        playing = (f" (playing a relay: {args.latency_ms:g} ms per message, {args.command_latency_ms:g} ms per "
                   f"command, at most {args.max_connections or 'any number of'} connections)")
    print(f"SMTP sink on {args.host}:{args.port}, storing into {args.maildir}{playing}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
