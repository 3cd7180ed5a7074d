"""The daemon's Prometheus metrics, on their own registry (so tests can make many daemons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    """Every metric the daemon exports; see the README's "Metrics" table."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "enforgate_deliveries",
            "Delivery attempts by event and outcome.",
            ["event", "outcome"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "enforgate_delivery_duration_seconds",
            "Time of one delivery attempt.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.queue_depth = Gauge(
            "enforgate_dispatch_queue_depth", "Events waiting in the dispatcher.", registry=r
        )
        self.dropped = Gauge(
            "enforgate_dispatch_dropped",
            "Events the dispatcher dropped since start (queue full).",
            registry=r,
        )
        self.hook_dropped = Counter(
            "enforgate_hook_dropped",
            "In-process hook calls dropped (queue full or bad input).",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "enforgate_outbox_in_flight",
            "Events handed to delivery and not finished yet.",
            registry=r,
        )
        self.detector_seconds = Histogram(
            "enforgate_detector_run_duration_seconds",
            "Time of one detector run.",
            ["detector"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.detector_runs = Counter(
            "enforgate_detector_runs",
            "Detector runs by outcome.",
            ["detector", "outcome"],
            registry=r,
        )
        self.anomalies = Counter(
            "enforgate_anomalies",
            "Anomalies recorded by type and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.tail_lag = Gauge(
            "enforgate_tail_lag_seconds",
            "Age of the newest activity row when the tail read it.",
            registry=r,
        )
        self.tail_events = Counter(
            "enforgate_tail_events", "Events the tail found, by event.", ["event"], registry=r
        )
        self.malformed_rows = Counter(
            "enforgate_malformed_rows", "Gateway rows skipped as malformed.", registry=r
        )
        self.tail_errors = Counter(
            "enforgate_tail_errors",
            "Tail polls that failed (e.g. the database was away).",
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics on host:port (a daemon thread of prometheus-client's)."""
        start_http_server(port, addr=host, registry=self.registry)
