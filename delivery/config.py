"""Settings of the signing dispatcher: the ``[delivery]`` table of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The contract's defaults: long enough for a receiver behind a cold load balancer, short enough
# that a dead one does not hold a worker for long.
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
# Next to the embedded SQLite database, so `make run` works with no set-up; production sets
# ENFORGATE_SECRET_KEY instead and keeps the key out of the working directory.
DEFAULT_SECRET_KEY_FILE = "./enforgate.key"  # noqa: S105  (a path, not a secret)
# Events waiting for the dispatcher. At ~1 KiB each this caps the backlog near 10 MiB; a gateway
# burst larger than this while every receiver is down is dropped (and counted) rather than
# letting memory grow without bound.
DEFAULT_QUEUE_SIZE = 10_000
# Requests in flight overall: enough to keep eight hanging receivers (at the per-endpoint cap
# below) from starving the rest. Not more: httpcore's pool scans every connection on each
# request, and the daemon benchmark (12 endpoints, 1,000 rows/s) fell behind at 64 and kept up
# at 16 on this 2-core machine.
DEFAULT_MAX_CONCURRENCY = 32
# Requests in flight to one endpoint: a hanging receiver holds at most this many of the slots
# above, so the others keep flowing. Four keep-alive connections already saturate one core's
# worth of httpx; more only add connections that httpx's pool scans on every request.
DEFAULT_PER_ENDPOINT_CONCURRENCY = 4
# Deliveries waiting for one endpoint, as many as the event queue holds: a burst the queue
# accepted is not dropped for a working receiver, while one that stays down fills only its own
# backlog (~100 bytes an entry; the event bodies are shared) and then has new deliveries dropped.
DEFAULT_PER_ENDPOINT_BACKLOG = 10_000
# How long the dispatcher trusts its cached list of endpoints: an `endpoints add` or `remove`
# takes effect in the daemon within this time, without a query per event.
DEFAULT_ENDPOINTS_REFRESH_S = 5.0
# Health records are written in batches this often, so recording does not cap throughput.
DEFAULT_HEALTH_FLUSH_INTERVAL_S = 0.5
# A week of delivery log answers "did the receiver get it last Tuesday?" without growing forever.
DEFAULT_LOG_RETENTION_DAYS = 7.0


class DeliveryConfig(BaseModel):
    """How deliveries are made. Keys ``timeout_s``, ``connect_timeout_s`` and
    ``allow_insecure_localhost`` are fixed by the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=300)
    connect_timeout_s: float = Field(DEFAULT_CONNECT_TIMEOUT_S, gt=0, le=300)
    allow_insecure_localhost: bool = False
    secret_key_file: str = Field(DEFAULT_SECRET_KEY_FILE, min_length=1)
    queue_size: int = Field(DEFAULT_QUEUE_SIZE, ge=1, le=10_000_000)
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1, le=10_000)
    per_endpoint_concurrency: int = Field(DEFAULT_PER_ENDPOINT_CONCURRENCY, ge=1, le=10_000)
    per_endpoint_backlog: int = Field(DEFAULT_PER_ENDPOINT_BACKLOG, ge=1, le=10_000_000)
    endpoints_refresh_s: float = Field(DEFAULT_ENDPOINTS_REFRESH_S, gt=0, le=3600)
    health_flush_interval_s: float = Field(DEFAULT_HEALTH_FLUSH_INTERVAL_S, gt=0, le=60)
    log_retention_days: float = Field(DEFAULT_LOG_RETENTION_DAYS, gt=0, le=3650)
