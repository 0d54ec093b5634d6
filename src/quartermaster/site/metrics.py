"""What the site's `/metrics` says, in Prometheus' text format (docs/operations.md).

Each site context has its own registry (several sites may share a test process). Request
counts and latencies come from the request log middleware, by route template, never by raw
path; queue depths and the database pool are read when Prometheus scrapes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from quartermaster.site.models import DistributionPoint, DPContent, Job

if TYPE_CHECKING:
    from quartermaster.site.context import SiteContext

log = logging.getLogger("quartermaster.site.metrics")
POLICY_ROUTE = "/api/client/v1/policy"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class SiteMetrics:
    def __init__(self, ctx: SiteContext) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qm_site_http_requests",
            "Requests answered by the site's API, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "qm_site_http_request_duration_seconds",
            "Time to answer a request of the site's API, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.policy_polls = Counter(
            "qm_site_policy_polls",
            "Client policy polls by answer: full (200), not_modified (304) or error.",
            ["answer"],
            registry=self.registry,
        )
        self.status_messages = Counter(
            "qm_site_status_messages",
            "Status messages received from clients: accepted, or duplicate (sent again).",
            ["outcome"],
            registry=self.registry,
        )
        for answer in ("full", "not_modified", "error"):
            self.policy_polls.labels(answer)
        for outcome in ("accepted", "duplicate"):
            self.status_messages.labels(outcome)
        self.registry.register(_ScrapeTimeCollector(ctx))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Called by the request log for every answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)
        if route == POLICY_ROUTE:
            answer = "not_modified" if status == 304 else "full" if status == 200 else "error"
            self.policy_polls.labels(answer).inc()

    def ingested(self, accepted: int, duplicates: int) -> None:
        self.status_messages.labels("accepted").inc(accepted)
        self.status_messages.labels("duplicate").inc(duplicates)


class _ScrapeTimeCollector(Collector):
    """Gauges read when scraped: jobs and DP content by state, the database pool."""

    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration: collect() reads the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._pool()
        try:
            yield from self._queues()
        except Exception:  # a database outage must not take /metrics down with it
            log.warning("could not read queue depths for /metrics", exc_info=True)
            failed = GaugeMetricFamily(
                "qm_site_queue_read_failed", "1 when the queue depths could not be read."
            )
            failed.add_metric([], 1)
            yield failed

    def _pool(self) -> Iterator[GaugeMetricFamily]:
        pool: Any = self.ctx.db.engine.pool
        gauge = GaugeMetricFamily(
            "qm_site_db_pool_connections",
            "Database connections of this process: in_use, idle, and the pool's size.",
            labels=["state"],
        )
        for state, reader in (("in_use", "checkedout"), ("idle", "checkedin"), ("size", "size")):
            method = getattr(pool, reader, None)
            if method is not None:
                gauge.add_metric([state], float(method()))
        yield gauge

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        with self.ctx.db.session() as session:
            jobs = session.execute(
                select(Job.kind, Job.state, func.count())
                .where(Job.state.in_(("queued", "running")))
                .group_by(Job.kind, Job.state)
            ).all()
            content = session.execute(
                select(DistributionPoint.name, DPContent.state, func.count())
                .join(DistributionPoint, DistributionPoint.id == DPContent.dp_id)
                .where(DistributionPoint.state == "active")
                .group_by(DistributionPoint.name, DPContent.state)
            ).all()
        job_gauge = GaugeMetricFamily(
            "qm_site_jobs", "Background jobs waiting or running, by kind.", labels=["kind", "state"]
        )
        for kind, state, count in jobs:
            job_gauge.add_metric([kind, state], count)
        yield job_gauge
        content_gauge = GaugeMetricFamily(
            "qm_site_dp_content_versions",
            "Package versions on each active DP by state (pending and distributing: the "
            "distribution backlog).",
            labels=["dp", "state"],
        )
        for name, state, count in content:
            content_gauge.add_metric([name, state], count)
        yield content_gauge
