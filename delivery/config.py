"""Settings of the signing dispatcher: the ``[delivery]`` table of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The contract's defaults: long enough for a receiver behind a cold load balancer, short enough
# that a dead one does not hold a worker for long.
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0


class DeliveryConfig(BaseModel):
    """How deliveries are made. Keys ``timeout_s``, ``connect_timeout_s`` and
    ``allow_insecure_localhost`` are fixed by the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=300)
    connect_timeout_s: float = Field(DEFAULT_CONNECT_TIMEOUT_S, gt=0, le=300)
    allow_insecure_localhost: bool = False
