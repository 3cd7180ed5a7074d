"""sign() and verify(): fixed vectors, an independent implementation, one error per failure."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from delivery import (
    BadTimestamp,
    InvalidBody,
    InvalidSecret,
    MissingHeader,
    SignatureError,
    SignatureMismatch,
    StaleTimestamp,
    generate_secret,
    secret_hint,
    sign,
    verify,
)

NOON = datetime(2026, 6, 19, 12, tzinfo=UTC)
NOON_MS = 1_781_870_400_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = (
    '{"event":"webhook.test","sentAt":"2026-06-19T12:00:00.000Z","data":{"message":"héllo ✓"}}'
).encode()

# (secret, timestamp, body, signature), computed with `openssl dgst -sha256 -hmac`.
VECTORS = [
    (SECRET, NOON_MS, BODY, "7a016c3fe9e0f54f66605194622f0dfa96af09ba182de3ce3b60709fa3806dbf"),
    (
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        0,
        b"",
        "e3c3bdbf81bb68b630a50f2dd5278bf2f58bc825a32b3aeb5aa3130dc20626fe",
    ),
]


def _headers(signature: str, timestamp: int = NOON_MS) -> dict[str, str]:
    return {"x-enforgate-timestamp": str(timestamp), "x-enforgate-signature": signature}


@pytest.mark.parametrize(("secret", "timestamp", "body", "expected"), VECTORS)
def test_sign_matches_the_fixed_vectors(
    secret: str, timestamp: int, body: bytes, expected: str
) -> None:
    assert sign(secret, timestamp, body) == expected


def test_signature_matches_openssl_over_non_ascii_body() -> None:
    secret = generate_secret()
    body = json.dumps({"summary": "Spike on «db.query» — 日本語 ✓"}, ensure_ascii=False).encode()
    ours = sign(secret, NOON_MS, body)
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret, "-r"],
        input=f"{NOON_MS}.".encode() + body,
        capture_output=True,
        check=True,
    )
    assert openssl.stdout.split()[0].decode() == ours


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_signature_matches_node_crypto_over_non_ascii_body() -> None:
    secret = generate_secret()
    body = json.dumps({"reason": "refusé: ünïcode ✓ 🚫"}, ensure_ascii=False).encode()
    script = (
        "const c=require('crypto');let b=[];process.stdin.on('data',d=>b.push(d));"
        "process.stdin.on('end',()=>{process.stdout.write(c.createHmac('sha256',"
        "process.argv[1]).update(Buffer.concat(b)).digest('hex'))})"
    )
    node = subprocess.run(
        ["node", "-e", script, secret],
        input=f"{NOON_MS}.".encode() + body,
        capture_output=True,
        check=True,
    )
    assert node.stdout.decode() == sign(secret, NOON_MS, body)


def test_verify_accepts_a_good_signature() -> None:
    verify(SECRET, _headers(sign(SECRET, NOON_MS, BODY)), BODY, now=NOON)


def test_verify_matches_header_names_case_insensitively() -> None:
    headers = {k.upper(): v for k, v in _headers(sign(SECRET, NOON_MS, BODY)).items()}
    verify(SECRET, headers, BODY, now=NOON)


def test_verify_rejects_a_body_changed_by_one_byte() -> None:
    with pytest.raises(SignatureMismatch):
        verify(SECRET, _headers(sign(SECRET, NOON_MS, BODY)), BODY + b" ", now=NOON)


def test_verify_rejects_another_secret() -> None:
    signature = sign(generate_secret(), NOON_MS, BODY)
    with pytest.raises(SignatureMismatch):
        verify(SECRET, _headers(signature), BODY, now=NOON)


def test_verify_rejects_a_malformed_signature_as_mismatch() -> None:
    with pytest.raises(SignatureMismatch, match="64 lowercase hex"):
        verify(SECRET, _headers("zz" * 32), BODY, now=NOON)


def test_verify_rejects_non_ascii_signature_without_type_error() -> None:
    with pytest.raises(SignatureMismatch):
        verify(SECRET, _headers("é" * 64), BODY, now=NOON)


@pytest.mark.parametrize("missing", ["x-enforgate-timestamp", "x-enforgate-signature"])
def test_verify_names_the_missing_header(missing: str) -> None:
    headers = _headers(sign(SECRET, NOON_MS, BODY))
    del headers[missing]
    with pytest.raises(MissingHeader, match=missing):
        verify(SECRET, headers, BODY, now=NOON)


@pytest.mark.parametrize("value", ["soon", "-1", "1.5e12", "1781870400000.0", "9" * 40, "0x10"])
def test_verify_rejects_a_timestamp_that_is_not_decimal_ms(value: str) -> None:
    headers = {"x-enforgate-timestamp": value, "x-enforgate-signature": "0" * 64}
    with pytest.raises(BadTimestamp):
        verify(SECRET, headers, BODY, now=NOON)


@pytest.mark.parametrize("offset", [timedelta(minutes=5, seconds=1), -timedelta(minutes=6)])
def test_verify_rejects_a_timestamp_outside_the_tolerance(offset: timedelta) -> None:
    headers = _headers(sign(SECRET, NOON_MS, BODY))
    with pytest.raises(StaleTimestamp):
        verify(SECRET, headers, BODY, now=NOON + offset)


def test_verify_accepts_a_timestamp_at_the_edge_of_the_tolerance() -> None:
    headers = _headers(sign(SECRET, NOON_MS, BODY))
    verify(SECRET, headers, BODY, now=NOON + timedelta(minutes=5))


def test_verify_tolerance_is_a_parameter() -> None:
    headers = _headers(sign(SECRET, NOON_MS, BODY))
    with pytest.raises(StaleTimestamp):
        verify(
            SECRET, headers, BODY, tolerance=timedelta(seconds=10), now=NOON + timedelta(seconds=11)
        )


def test_verify_rejects_decoded_text_instead_of_raw_bytes() -> None:
    headers = _headers(sign(SECRET, NOON_MS, BODY))
    with pytest.raises(InvalidBody):
        verify(SECRET, headers, BODY.decode(), now=NOON)  # type: ignore[arg-type]


def test_every_verification_failure_is_a_signature_error() -> None:
    for cls in (MissingHeader, BadTimestamp, StaleTimestamp, SignatureMismatch, InvalidBody):
        assert issubclass(cls, SignatureError)
        assert issubclass(cls, ValueError)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(InvalidSecret):
        sign("", NOON_MS, BODY)


def test_generated_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_secret() != secret


def test_hint_is_prefix_ellipsis_and_last_four_characters() -> None:
    assert secret_hint(SECRET) == "whsec_…LaSw"
