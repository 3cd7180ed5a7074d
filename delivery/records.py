"""What one delivery attempt came to: an outcome, and a frozen record of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class DeliveryOutcome(enum.Enum):
    """How an attempt ended. Only ``OK`` (a 2xx answer) counts as delivered."""

    OK = "ok"
    HTTP_ERROR = "http_error"  # the receiver answered, but not with 2xx
    REDIRECT = "redirect"  # a 3xx: redirects are not followed, so nothing was delivered
    TIMEOUT = "timeout"  # connect or total timeout
    CONNECT_ERROR = "connect_error"  # refused, unreachable, reset while connecting
    DNS_ERROR = "dns_error"  # the host name did not resolve
    TLS_ERROR = "tls_error"  # handshake or certificate failure
    PROTOCOL_ERROR = "protocol_error"  # the receiver broke HTTP (bad response, dropped mid-way)
    NETWORK_ERROR = "network_error"  # reading or writing failed after connecting
    DROPPED = "dropped"  # never sent: the endpoint's backlog was full
    ERROR = "error"  # anything else; the error text says what


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One attempt to deliver one event to one endpoint.

    ``error`` is text, ``"ClassName: message"``, never a live exception; ``status`` is the HTTP
    status when the receiver answered.
    """

    delivery_id: str
    endpoint_id: str
    account_id: str
    event_type: str
    at: datetime  # when the attempt started, aware UTC
    duration_s: float
    outcome: DeliveryOutcome
    ok: bool
    status: int | None
    error: str | None
