"""Sharing a service's public booking page: its URL (from ``APP_BASE_URL``, as emails link it) and
its QR code, drawn here with segno (nothing leaves the server; the page shows it as an SVG
``data:`` image, allowed by the CSP's ``img-src 'self' data:``, and offers a PNG for flyers)."""
from app.models import Service
from app.urls import external_url

#: Pixels per QR module in the downloadable PNG: a version-3 code (a ~60-character URL) is
#: 29 modules + a 4-module quiet zone on each side = 37 modules, 1,110 px: sharp on an A4 flyer.
PNG_SCALE = 30


def public_url(service: Service) -> str:
    """The address guests book at (``/s/<public_id>``), absolute."""
    return external_url("booking.service_page", public_id=service.public_id)


def _qr(text: str):
    import segno  # only the service page draws one: a slow import no other process needs

    return segno.make(text, error="m")


def qr_data_uri(text: str) -> str:
    """The QR code of ``text`` as an SVG ``data:`` URI, for an ``<img>`` on the page."""
    return _qr(text).svg_data_uri(scale=4, border=4, dark="#1f2328")


def qr_png(text: str) -> bytes:
    """The QR code of ``text`` as a PNG large enough to print."""
    import io

    out = io.BytesIO()
    _qr(text).save(out, kind="png", scale=PNG_SCALE, border=4, dark="#000000")
    return out.getvalue()
