"""The ``api.operations.Operations`` of ``b2bua serve``: its metrics and its health check."""

from __future__ import annotations

from typing import Any

from b2bua.health import HealthCheck
from b2bua.metrics import ServerMetrics


class ServerOperations:
    def __init__(self, metrics: ServerMetrics, health: HealthCheck) -> None:
        self._metrics = metrics
        self._health = health

    def metrics(self) -> tuple[bytes, str]:
        return self._metrics.render()

    def health(self) -> tuple[int, dict[str, Any]]:
        return self._health.health()

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        self._metrics.request_done(method, route, status, seconds)
