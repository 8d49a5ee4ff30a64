"""The process's own metrics: CPU, memory, file descriptors, garbage collection, the platform.

One process registers prometheus-client's process, platform and GC collectors
on its registry. Several workers cannot: ``/metrics`` is answered by whichever
worker the connection reached and those collectors describe only the process
that runs them. So each worker copies what the same collectors report into
gauges of the shared metric files every second, under the same names with a
``pid`` label (and drops them when it exits), and every scrape shows every
worker.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector


class ProcessMetrics:
    """Process, platform and GC metrics of this process, for one registry or shared files."""

    def __init__(self, registry: CollectorRegistry, shared: bool) -> None:
        self._sources: list[Collector] = []
        self._gauges: dict[str, Gauge] = {}
        if not shared:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
            return
        # the default registry's instances, not registered anywhere else here
        self._sources = [PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR]
        self.sample()

    def sample(self) -> None:
        """Copy the collectors' current values into the shared gauges (workers only)."""
        for source in self._sources:
            for family in source.collect():
                for s in family.samples:
                    gauge = self._gauges.get(s.name)
                    if gauge is None:
                        gauge = Gauge(
                            s.name,
                            family.documentation,
                            list(s.labels),
                            registry=None,
                            multiprocess_mode="liveall",
                        )
                        self._gauges[s.name] = gauge
                    (gauge.labels(**s.labels) if s.labels else gauge).set(s.value)
