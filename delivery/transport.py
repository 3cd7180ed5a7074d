"""One HTTP attempt, and the one place where httpx's exceptions become a DeliveryOutcome."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Final

import httpx

from .config import DeliveryConfig
from .records import DeliveryOutcome

# The contract: at most 64 KiB of a receiver's answer is read; a receiver that streams a huge
# body cannot hold memory or the connection.
MAX_RESPONSE_BYTES: Final = 64 * 1024
# Error texts are stored per delivery; a receiver's long error page is not worth keeping.
MAX_ERROR_CHARS: Final = 300


def _version() -> str:
    try:
        return version("enforgate-webhooks")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


USER_AGENT: Final = f"enforgate-webhooks/{_version()}"


def timeouts(config: DeliveryConfig) -> httpx.Timeout:
    """Per-phase timeouts; the total is enforced separately, around the whole attempt."""
    return httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)


def make_client(config: DeliveryConfig) -> httpx.AsyncClient:
    """The shared client the dispatcher creates when none is injected (the dispatcher closes it)."""
    return httpx.AsyncClient(
        timeout=timeouts(config),
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=config.max_concurrency,
            max_keepalive_connections=config.max_concurrency,
        ),
        # Receivers are named by their owners; a proxy from the daemon's environment would
        # silently reroute signed events.
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    config: DeliveryConfig,
) -> tuple[DeliveryOutcome, int | None, str | None]:
    """POST once; return the outcome, the HTTP status if any, and the error text if any.

    Never raises except on cancellation: every failure becomes an outcome.
    """
    status: int | None = None
    try:
        async with asyncio.timeout(config.timeout_s):
            request = client.build_request(
                "POST", url, content=body, headers=headers, timeout=timeouts(config)
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                status = response.status_code
                read = 0
                # Read (a bounded part of) the body so a keep-alive connection can be reused.
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except Exception as exc:
        if status is not None:
            # The receiver answered; failing to read the rest of its body changes nothing.
            return outcome_for_status(status), status, None
        outcome, error = classify_error(exc, config)
        return outcome, None, error
    return outcome_for_status(status), status, None


def outcome_for_status(status: int) -> DeliveryOutcome:
    """A 2xx is delivered; a 3xx is a redirect we do not follow; anything else failed."""
    if 200 <= status < 300:
        return DeliveryOutcome.OK
    if 300 <= status < 400:
        return DeliveryOutcome.REDIRECT
    return DeliveryOutcome.HTTP_ERROR


def classify_error(exc: BaseException, config: DeliveryConfig) -> tuple[DeliveryOutcome, str]:
    """The outcome and ``"ClassName: message"`` text for a failed attempt.

    The only function that names httpx's exception classes.
    """
    if isinstance(exc, httpx.ConnectTimeout):
        return DeliveryOutcome.TIMEOUT, _text(
            exc, f"no connection within {config.connect_timeout_s:g} s"
        )
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return DeliveryOutcome.TIMEOUT, _text(exc, f"no answer within {config.timeout_s:g} s")
    if isinstance(exc, httpx.TransportError):
        cause = _root_cause(exc)
        if isinstance(cause, ssl.SSLError):
            return DeliveryOutcome.TLS_ERROR, _text(cause, "TLS handshake failed")
        if isinstance(cause, socket.gaierror):
            return DeliveryOutcome.DNS_ERROR, _text(cause, "host name did not resolve")
        if isinstance(exc, httpx.ConnectError):
            message = str(exc)
            if "SSL" in message or "certificate" in message:
                return DeliveryOutcome.TLS_ERROR, _text(exc, "TLS handshake failed")
            if "Name or service not known" in message or "nodename nor servname" in message:
                return DeliveryOutcome.DNS_ERROR, _text(exc, "host name did not resolve")
            # httpx says "All connection attempts failed"; the OS error under it says why.
            reason = cause if isinstance(cause, OSError) and cause.errno else exc
            return DeliveryOutcome.CONNECT_ERROR, _text(reason, "connection failed")
        if isinstance(exc, httpx.ProtocolError):
            return DeliveryOutcome.PROTOCOL_ERROR, _text(exc, "invalid HTTP response")
        if isinstance(exc, httpx.NetworkError):
            return DeliveryOutcome.NETWORK_ERROR, _text(exc, "connection lost")
    if isinstance(exc, httpx.DecodingError):
        return DeliveryOutcome.PROTOCOL_ERROR, _text(exc, "undecodable response")
    return DeliveryOutcome.ERROR, _text(exc, "unexpected error")


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        if isinstance(nxt, ssl.SSLError | socket.gaierror):
            return nxt
        exc = nxt


def _text(exc: BaseException, fallback: str) -> str:
    message = str(exc).strip() or fallback
    text = f"{type(exc).__name__}: {message}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
