"""What a benchmark run measured: per scale, each command's samples; the daemon's and the
start-up figures. bench/run.py fills it, bench/report.py reads it."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import startup
from bench.daemon import DaemonFigures
from bench.measure import Sample


class BenchFailure(AssertionError):
    """A correctness check failed: the figures would be meaningless."""


@dataclass
class ScaleResult:
    scale: int
    objects: int = 0
    dump_bytes: int = 0
    load_s: float = 0.0
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, command: str, sample: Sample) -> None:
        self.samples.setdefault(command, []).append(sample)

    def median_wall(self, command: str) -> float | None:
        got = self.samples.get(command)
        return statistics.median(s.wall_s for s in got) if got else None


@dataclass
class Results:
    scales: list[ScaleResult] = field(default_factory=list)
    daemon: DaemonFigures | None = None
    daemon_note: str = ""
    startup: startup.StartupFigures | None = None
    migra_note: str = ""
    host: str = ""
    quick: bool = False
    note: str = ""

    def to_json(self) -> str:
        def strip(sample: Sample) -> dict[str, Any]:
            d = asdict(sample)
            d.pop("stdout")
            d.pop("stderr")
            return d

        doc = {
            "host": self.host,
            "quick": self.quick,
            "note": self.note,
            "migra_note": self.migra_note,
            "daemon_note": self.daemon_note,
            "daemon": asdict(self.daemon) if self.daemon else None,
            "startup": asdict(self.startup) if self.startup else None,
            "scales": [
                {
                    "scale": s.scale,
                    "objects": s.objects,
                    "dump_bytes": s.dump_bytes,
                    "load_s": s.load_s,
                    "notes": s.notes,
                    "samples": {c: [strip(x) for x in xs] for c, xs in s.samples.items()},
                }
                for s in self.scales
            ],
        }
        return json.dumps(doc, indent=1) + "\n"
