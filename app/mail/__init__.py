"""Email: the outbox (write, claim, mark), rendering at send time, and SMTP."""
