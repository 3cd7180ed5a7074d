"""Secrets at rest: the key from the environment, or a key file created with mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from delivery import SecretCipher, SecretKeyError, load_cipher


def test_key_file_is_created_with_mode_0600_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "enforgate.key"
    cipher = load_cipher(path, environ={})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = cipher.encrypt("whsec_x")
    assert load_cipher(path, environ={}).decrypt(token) == "whsec_x"


def test_environment_key_wins_over_the_key_file(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    cipher = load_cipher(tmp_path / "unused.key", environ={"ENFORGATE_SECRET_KEY": key})
    assert not (tmp_path / "unused.key").exists()
    assert SecretCipher(key).decrypt(cipher.encrypt("whsec_y")) == "whsec_y"


def test_malformed_key_is_a_clear_error() -> None:
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        load_cipher("unused", environ={"ENFORGATE_SECRET_KEY": "hunter2"})


def test_a_token_from_another_key_cannot_be_decrypted() -> None:
    token = SecretCipher(Fernet.generate_key()).encrypt("whsec_z")
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretCipher(Fernet.generate_key()).decrypt(token)


def test_the_ciphertext_does_not_contain_the_secret() -> None:
    secret = "whsec_" + "A" * 44
    assert "A" * 10 not in SecretCipher(Fernet.generate_key()).encrypt(secret)
