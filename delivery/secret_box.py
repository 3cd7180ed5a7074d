"""Endpoint secrets encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from ``ENFORGATE_SECRET_KEY`` (no ``__`` in the name, so it is not a config key)
or, for the embedded default, from a key file created with mode 0600 on first use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken

from .exceptions import SecretKeyError

SECRET_KEY_ENV: Final = "ENFORGATE_SECRET_KEY"  # noqa: S105  (a variable name)
# Owner read/write only: the key file is as sensitive as every endpoint secret together.
_KEY_FILE_MODE: Final = 0o600


class SecretCipher:
    """Encrypts and decrypts endpoint secrets with one Fernet key."""

    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                "the secret key is not a Fernet key (32 url-safe base64-encoded bytes); "
                f"make one with: python -c 'from cryptography.fernet import Fernet; "
                f"print(Fernet.generate_key().decode())' and put it in {SECRET_KEY_ENV}"
            ) from None

    def encrypt(self, secret: str) -> str:
        """The token to store for ``secret``."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The secret a stored token holds.

        Raises:
            SecretKeyError: the token was made with another key (the key changed or was lost).
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(
                "an endpoint secret cannot be decrypted with this key: was "
                f"{SECRET_KEY_ENV} or the key file changed? Re-create the endpoint"
            ) from None


def load_cipher(key_file: str | Path, environ: Mapping[str, str] | None = None) -> SecretCipher:
    """The cipher for the key in ``ENFORGATE_SECRET_KEY``, else in ``key_file``.

    The key file is created (mode 0600, a new random key) when it does not exist yet.

    Raises:
        SecretKeyError: the key is malformed, or the file cannot be read or created.
    """
    env = os.environ if environ is None else environ
    from_env = env.get(SECRET_KEY_ENV, "").strip()
    if from_env:
        return SecretCipher(from_env)
    return SecretCipher(_read_or_create_key_file(Path(key_file)))


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _KEY_FILE_MODE)
    except FileExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise SecretKeyError(f"cannot create the key file {path}: {exc.strerror}") from None
    key = Fernet.generate_key()
    try:
        # O_CREAT's mode is masked by the umask; set it explicitly in case the umask is odd.
        os.fchmod(fd, _KEY_FILE_MODE)
        os.write(fd, key + b"\n")
    finally:
        os.close(fd)
    return key


def _read_key_file(path: Path) -> bytes:
    # Another process may have created the file a moment ago and not written it yet.
    for _ in range(50):
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise SecretKeyError(f"cannot read the key file {path}: {exc.strerror}") from None
        if key:
            return key
        time.sleep(0.01)
    raise SecretKeyError(f"the key file {path} is empty; delete it to make a new key")
