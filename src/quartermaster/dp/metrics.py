"""What a DP's content server says at `/metrics` (Prometheus text format): requests and
bytes served, downloads in progress, and from its agent the distribution backlog and the
results of validation. One registry per content server (docs/operations.md, "Metrics")."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DPMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qm_dp_http_requests",
            "Requests answered by the content server, by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.bytes_served = Counter(
            "qm_dp_served_bytes",
            "Bytes of blobs and manifests sent (200 and 206 answers), by store.",
            ["store"],
            registry=self.registry,
        )
        self.active_downloads = Gauge(
            "qm_dp_active_downloads",
            "Blob and manifest answers being sent right now.",
            registry=self.registry,
        )
        self.backlog = Gauge(
            "qm_dp_distribution_backlog_versions",
            "Package versions assigned to this DP that it does not hold complete yet.",
            registry=self.registry,
        )
        self.validations = Counter(
            "qm_dp_validations",
            "Package versions re-hashed by this DP, by result: ok or damaged.",
            ["result"],
            registry=self.registry,
        )
        self.bad_blobs = Counter(
            "qm_dp_validation_bad_blobs",
            "Blobs that validation found missing or not matching their hash.",
            registry=self.registry,
        )
        for result in ("ok", "damaged"):
            self.validations.labels(result)

    def validated(self, bad_blobs: int) -> None:
        self.validations.labels("damaged" if bad_blobs else "ok").inc()
        self.bad_blobs.inc(bad_blobs)
