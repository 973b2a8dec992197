"""Japanese mobile carriers' email addresses, and how their guests let the platform's emails in.

An address at a carrier's domain (``docomo.ne.jp``, ``ezweb.ne.jp``, ``au.com``,
``softbank.ne.jp``, ``i.softbank.jp``, or a subdomain of one) often refuses mail from a domain
the guest has not allowed: the booked page and the confirmation email then show the carrier's
「受信設定」 steps for the sender domain (``MAIL_FROM``'s). The steps name only the carriers'
own settings as they call them and link each carrier's official help, where the exact menus
(which change with the phone and the app) are.
"""
from dataclasses import dataclass
from email.utils import parseaddr

from flask import current_app


def N_(message: str) -> str:
    """Marks a message for extraction; the templates translate it (with ``domain``)."""
    return message


@dataclass(frozen=True)
class Carrier:
    key: str
    #: The carrier as guests know it (a message: the templates translate it).
    name: str
    #: The mail domains; a subdomain of one counts too.
    domains: tuple[str, ...]
    #: Short steps, each a message with ``%(domain)s`` (the sender domain) where it names it.
    steps: tuple[str, ...]
    #: The carrier's official help page on its spam filter / allowed senders.
    help_url: str


CARRIERS: tuple[Carrier, ...] = (
    Carrier("docomo", N_("ドコモ"), ("docomo.ne.jp",),
            (N_("「My docomo」を開き、「メール設定」に進みます。"),
             N_("「受信リスト設定」で、%(domain)s を受信するドメインとして登録します。")),
            "https://www.docomo.ne.jp/info/spam_mail/"),
    Carrier("au", "au", ("ezweb.ne.jp", "au.com"),
            (N_("auメールの「迷惑メールフィルター」の設定を開きます。"),
             N_("「受信リスト設定」に %(domain)s を登録します。")),
            "https://www.au.com/support/service/mobile/trouble/mail/email/filter/"),
    Carrier("softbank", N_("ソフトバンク"), ("softbank.ne.jp", "i.softbank.jp"),
            (N_("「My SoftBank」で「迷惑メール対策」の設定を開きます。"),
             N_("「許可するメールの登録」に %(domain)s を登録します。")),
            "https://www.softbank.jp/mobile/support/mail/antispam/"),
)


def carrier_of(email: str | None) -> Carrier | None:
    """The carrier whose domain (or a subdomain of it) the address is at, or None."""
    domain = (email or "").rpartition("@")[2].strip().lower().rstrip(".")
    if not domain:
        return None
    for carrier in CARRIERS:
        if any(domain == d or domain.endswith("." + d) for d in carrier.domains):
            return carrier
    return None


def sender_domain() -> str:
    """The domain of the platform's sender address (``MAIL_FROM``), which guests allow."""
    return parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2].lower()


def carrier_guidance(email: str | None) -> dict | None:
    """What the booked page and the confirmation email show for a carrier address: ``carrier``
    and ``domain`` (the sender's); None for any other address."""
    carrier = carrier_of(email)
    if carrier is None:
        return None
    return {"carrier": carrier, "domain": sender_domain()}
