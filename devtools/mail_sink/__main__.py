"""``python -m devtools.mail_sink``: the embedded SMTP server (see the package's docstring)."""
from devtools.mail_sink import main

main()
