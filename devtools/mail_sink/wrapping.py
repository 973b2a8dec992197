"""The base of the sink's handler wrappers (``Pipelining``, ``LateBounces``)."""


class HandlerWrapper:
    """An aiosmtpd handler that adds to ``handler``: every hook it does not define is the wrapped one's."""

    def __init__(self, handler):
        self.handler = handler

    def __getattr__(self, name):
        return getattr(self.handler, name)

    def __dir__(self):  # aiosmtpd finds a handler's hooks with dir(): the wrapped handler's too
        return sorted({*super().__dir__(), *dir(self.handler)})
