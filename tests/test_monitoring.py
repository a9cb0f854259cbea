"""deploy/prometheus and deploy/grafana: the rules load and fire as documented (promtool), the
dashboard is a valid Grafana dashboard on a datasource variable, and every metric either names
is one a running daemon really serves on /metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from service.demo.cluster import ScratchCluster, free_port
from tests.conftest import FIXTURES, Database, new_database
from tests.daemon_proc import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "pg-schema-sync.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "pg-schema-sync.rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pg-schema-sync.json"
DOC = ROOT / "docs" / "monitoring.md"
# Series Prometheus makes itself, not the daemon.
PROMETHEUS_OWN = {"up"}
METRIC = re.compile(r"\b(pg_schema_sync_[a-z_]+|process_[a-z_]+|up)\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: ./dev test installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus, or ./dev test)")
    return found


def rules() -> list[dict[str, object]]:
    doc = YAML(typ="safe").load(RULES.read_text())
    return [r for group in doc["groups"] for r in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_unit_tests_fire_each_rule_as_documented() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {str(r["alert"]) for r in rules()}  # every rule has its test


def test_each_rule_says_what_and_links_its_runbook_section() -> None:
    doc = DOC.read_text()
    headings = {h.strip().lower() for h in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)}
    for rule in rules():
        notes = rule["annotations"]
        assert isinstance(notes, dict)
        assert notes["summary"] and notes["description"], rule["alert"]
        anchor = str(notes["runbook_url"]).rsplit("#", 1)[1]
        assert anchor == str(rule["alert"]).lower()
        assert anchor in headings, f"docs/monitoring.md has no section {rule['alert']}"
        assert rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]


def test_the_dashboard_is_grafana_json_on_a_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"] == "pg-schema-sync"
    titles = {p["title"] for p in board["panels"]}
    for wanted in (
        "Sync duration (p50, p95)",
        "Cycles: full vs skipped",
        "Drift objects by target",
        "Failures by cause",
        "Catalog probe: duration (p95) and failures",
        "Last success age",
    ):
        assert wanted in titles
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'instance=~"$instance"' in target["expr"], target["expr"]


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


def test_every_metric_the_rules_and_dashboard_use_is_served(shop: Database, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "SCHEMA_SYNC_DSN": shop.dsn,
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",
        "SCHEMA_SYNC_METRICS_PORT": str(port),
    }
    with DaemonProcess(tmp_path, env) as d:
        d.wait_for("sync.finished", timeout=60)  # one full sync; every other series is declared
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        d.send(signal.SIGTERM)
        assert d.wait_exit(20) == 0
    served = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")
    }
    used: set[str] = set()
    for rule in rules():
        used |= set(METRIC.findall(str(rule["expr"])))
    for expr in dashboard_exprs():
        used |= set(METRIC.findall(expr))
    assert len(used) >= 10
    missing = sorted(used - served - PROMETHEUS_OWN)
    assert missing == [], f"named by the rules or the dashboard, not on /metrics: {missing}"
    # Declared at start with zero: a first failure or skipped cycle is an increase() from 0.
    assert 'pg_schema_sync_sync_failures_total{cause="connection"} 0.0' in text
    assert 'pg_schema_sync_cycles_total{kind="skipped"} 0.0' in text
    assert "pg_schema_sync_success_deadline_timestamp_seconds 1." in text  # a real deadline
