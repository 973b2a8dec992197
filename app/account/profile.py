"""The host's profile as guests see it: the name, a short introduction and an optional photo.

A photo is never stored as uploaded. Pillow reads it (JPEG, PNG or WebP only, a bounded number of
pixels so a small file cannot unpack into gigabytes), turns it upright by its EXIF orientation,
crops it square, scales it down to ``PHOTO_SIZE`` and writes a fresh JPEG: the camera's metadata
(GPS position, device, original timestamps) is not copied. The result (a few tens of kB) is kept
in the database and served at ``/photos/<digest>.jpg``, a URL that changes with the content, so
browsers may cache it for good.
"""
import hashlib
import io
import warnings

from sqlalchemy import select

from app.extensions import db
from app.models import User

#: What the form accepts before any decoding (the request limit for the photo route is a bit more).
PHOTO_UPLOAD_MAX = 8 * 1024 * 1024
#: Pixels a photo may have when decoded (a 48-megapixel phone camera is 8064 × 6048).
PHOTO_MAX_PIXELS = 50_000_000
#: The stored photo's side: shown at 96 px at most, three device pixels per CSS pixel.
PHOTO_SIZE = 288
PHOTO_QUALITY = 85
#: Pillow's format names of the images a host may upload.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP")
DISPLAY_NAME_MAX = 80
BIO_MAX = 300


class NotAPhoto(Exception):
    """The upload is not a JPEG, PNG or WebP image Pillow can read, or it is too large."""

    def __init__(self, too_large: bool = False):
        super().__init__("too large" if too_large else "not a photo")
        self.too_large = too_large


def set_profile(host: User, display_name: str, bio: str) -> None:
    """Save the name guests see on the host's pages and emails, and the short introduction."""
    host.display_name = display_name.strip()
    host.bio = (bio or "").strip()


def photo_jpeg(data: bytes) -> bytes:
    """``data`` (an uploaded image) re-encoded as a small square JPEG without metadata.

    :raises NotAPhoto: not one of ``PHOTO_FORMATS``, unreadable, or too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > PHOTO_UPLOAD_MAX:
        raise NotAPhoto(too_large=True)
    try:
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) before it refuses; our own limit comes first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PHOTO_FORMATS) as image:
                if image.width * image.height > PHOTO_MAX_PIXELS:
                    raise NotAPhoto(too_large=True)
                image.draft("RGB", (PHOTO_SIZE * 2, PHOTO_SIZE * 2))  # JPEG: decode at a reduced scale
                upright = ImageOps.exif_transpose(image)
                square = ImageOps.fit(upright.convert("RGB"), (PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise NotAPhoto() from None
    out = io.BytesIO()
    square.save(out, "JPEG", quality=PHOTO_QUALITY, optimize=True, progressive=True)  # no exif= : none kept
    return out.getvalue()


def set_photo(host: User, jpeg: bytes) -> None:
    """Store a photo made by ``photo_jpeg`` as the host's."""
    host.photo = jpeg
    host.photo_digest = hashlib.sha256(jpeg).hexdigest()[:32]


def remove_photo(host: User) -> None:
    """Guests see the host's name without a photo again."""
    host.photo = None
    host.photo_digest = None


def photo_for(digest: str) -> bytes | None:
    """The stored photo whose digest is ``digest`` (any host's: it is public), or None."""
    return db.session.scalar(select(User.photo).where(User.photo_digest == digest).limit(1))
