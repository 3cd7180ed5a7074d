"""The README's receiver (examples/receiver.py) accepts our signed webhooks and nothing else."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from delivery import generate_secret, sign

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receiver.py"
BODY = '{"event":"call.blocked","sentAt":"2026-06-19T12:00:00.000Z","data":{"tool":"rm ✓"}}'


@pytest.fixture
def secret() -> str:
    return generate_secret()


@pytest.fixture
def example(secret: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0", "--secret", secret],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("listening on "), first
    yield proc, first.split()[-1].rstrip("/")
    if proc.returncode is None:
        proc.terminate()
        proc.communicate(timeout=10)  # also closes the pipes


def _post(url: str, secret: str, body: bytes, timestamp_ms: int | None = None) -> int:
    ts = timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000
    headers = {
        "content-type": "application/json",
        "x-enforgate-event": "call.blocked",
        "x-enforgate-timestamp": str(ts),
        "x-enforgate-signature": sign(secret, ts, body),
        "x-enforgate-delivery": "dlv_test",
    }
    return httpx.post(url + "/hook", content=body, headers=headers, trust_env=False).status_code


def test_example_receiver_accepts_a_signed_event_and_prints_one_line(
    example: tuple[subprocess.Popen[str], str], secret: str
) -> None:
    proc, url = example
    assert _post(url, secret, BODY.encode()) == 204
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("2026-06-19T12:00:00.000Z call.blocked dlv_test verified ")
    assert "rm ✓" in line


def test_example_receiver_rejects_a_wrong_secret_and_a_stale_timestamp(
    example: tuple[subprocess.Popen[str], str], secret: str
) -> None:
    proc, url = example
    assert _post(url, generate_secret(), BODY.encode()) == 401
    assert _post(url, secret, BODY.encode(), timestamp_ms=1_000) == 401
    proc.terminate()
    _, stderr = proc.communicate(timeout=10)
    assert "rejected: SignatureMismatch" in stderr
    assert "rejected: StaleTimestamp" in stderr
