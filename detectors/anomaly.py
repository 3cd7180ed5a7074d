"""The ``Anomaly`` record: what a detector found, with everything ``anomaly.detected`` carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

AnomalyType = Literal["call_spike", "block_rate_jump", "new_tool"]
Severity = Literal["low", "medium", "high"]

#: Types whose identity is the pair, not the window: reported once per pair, ever.
_ONCE_EVER: Final[frozenset[str]] = frozenset({"new_tool"})
# 24 hex digits (96 bits) keep ids short in a URL or a log line and collisions out of reach.
_ID_HEX_DIGITS: Final = 24


@dataclass(frozen=True)
class Anomaly:
    """Unusual behaviour of one account (and server/tool, where per tool) in one closed window.

    ``observed``, ``baseline`` and ``threshold`` share a unit: calls in the window for
    ``call_spike`` and ``new_tool``, the share of denied calls (0 to 1) for ``block_rate_jump``.
    ``threshold`` is the smallest observation that would have fired.
    """

    type: AnomalyType
    account_id: str
    server: str | None
    tool: str | None
    window_start: datetime
    window_end: datetime
    observed: float
    baseline: float
    threshold: float
    severity: Severity
    summary: str

    def __post_init__(self) -> None:
        for name in ("window_start", "window_end"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} {getattr(self, name)!r} is naive: pass an aware time")

    @property
    def fingerprint(self) -> str:
        """A stable digest of what makes this anomaly the same one when found again.

        The type, account, server and tool, plus the window for windowed types. A new tool is
        the same anomaly whatever window it was found in, so it is reported once per pair.
        The measured values are left out: a re-run that counted one more late row still
        recognises the anomaly.
        """
        parts = [self.type, self.account_id, self.server or "", self.tool or ""]
        if self.type not in _ONCE_EVER:
            parts += [_iso(self.window_start), _iso(self.window_end)]
        # \x1f (unit separator) cannot be confused with characters inside an id or tool name.
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    @property
    def anomaly_id(self) -> str:
        """The contract's ``anomalyId``: derived from the fingerprint, so stable across runs."""
        return "anom_" + self.fingerprint[:_ID_HEX_DIGITS]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()
