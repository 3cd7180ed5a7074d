"""Errors raised by the detectors.

::

    DetectorError
    ├── UnknownDetectorError (LookupError)     no detector has that name
    └── InvalidObservationsError (ValueError)  the counts handed to a detector are malformed
"""

from __future__ import annotations


class DetectorError(Exception):
    """Root of the errors this package raises."""


class UnknownDetectorError(DetectorError, LookupError):
    """No detector has the given name; the message lists the known names."""


class InvalidObservationsError(DetectorError, ValueError):
    """The counts handed to a detector lack a column or cover the wrong window."""
