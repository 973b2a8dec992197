"""Encryption at rest for secrets (Zoom tokens), with key rotation.

``TOKEN_ENCRYPTION_KEY`` holds one or more Fernet keys separated by commas: the first encrypts,
every one decrypts, so a new key can be put first and old rows re-encrypted at leisure
(``MultiFernet.rotate``).
"""
from cryptography.fernet import Fernet, MultiFernet
from flask import current_app


def _fernet() -> MultiFernet:
    keys = [k.strip() for k in current_app.config["TOKEN_ENCRYPTION_KEY"].split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt a stored secret (with any configured key)."""
    return _fernet().decrypt(ciphertext.encode()).decode()


def rotate(ciphertext: str) -> str:
    """Re-encrypt a stored secret with the current first key."""
    return _fernet().rotate(ciphertext.encode()).decode()
