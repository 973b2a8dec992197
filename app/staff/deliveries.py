"""The delivery log as staff read it."""
import ast
import re

#: An SMTP reply inside a stored error, as Python writes it: ``(550, b'5.1.1 User unknown')``.
_SMTP_REPLY = re.compile(r"""\((\d{3}), (b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*")""")


def readable_error(error: str) -> str:
    """The SMTP server's answer in a stored delivery error (``550 5.1.1 User unknown``), else the error itself.

    The outbox stores ``<exception class>: <str(exception)>``; for an SMTP refusal that is a
    Python repr, e.g. ``SMTPRecipientsRefused: {'a@example.com': (550, b'5.1.1 User unknown')}``.
    """
    replies = []
    for code, literal in _SMTP_REPLY.findall(error):
        message = ast.literal_eval(literal)
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        replies.append(" ".join([code, *message.split()]))  # a multi-line reply on one line
    return "; ".join(dict.fromkeys(replies)) or error
