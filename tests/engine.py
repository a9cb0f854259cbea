"""A real Docker engine for the container tests, and the base images they need.

- `Engine.start()` uses a running engine, or (as root) starts `dockerd` and stops it again at
  `stop()` — also from atexit, so a failing or interrupted session does not leave it running.
- `Engine.ensure_image(name, recipe)` makes sure a base image the Dockerfile or the compose
  file names exists: the real one if it is there or can be pulled, otherwise a stand-in with the
  same name built from `tests/standins/<recipe>.Dockerfile` on a Debian rootfs made by
  debootstrap. Stand-ins carry a label with the hash of everything they were built from, so
  they are reused between runs and rebuilt when a recipe changes; the rootfs tarball is kept in
  CACHE_DIR.

The package-index settings and CA bundle that let this host reach PyPI are read from the host at
test time and copied into the Python stand-in; nothing about them is kept in the repository.
"""

from __future__ import annotations

import atexit
import configparser
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

STANDINS = Path(__file__).resolve().parent / "standins"
CACHE_DIR = Path(os.environ.get("PG_SCHEMA_SYNC_TEST_CACHE", "/var/cache/pg-schema-sync-test"))
LABEL = "pg-schema-sync-test.standin"
BASE_IMAGE = "pg-schema-sync-test/debian:bookworm-minbase"
SUITE = "bookworm"
# Figures for the end of the test output (build time, image size, what was built or started).
FIGURES: list[str] = []
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class EngineUnavailable(Exception):
    """Docker cannot run here; the message says why."""


def run(
    args: list[str],
    timeout: float,
    *,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """A bounded subprocess; on failure the error carries the command's output."""
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        output = proc.stdout[-4000:] + proc.stderr[-4000:]
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{output}")
    return proc


def docker_env() -> dict[str, str]:
    # The legacy builder: no buildx plugin is needed, and it never pulls a frontend image.
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def proxy_build_args() -> list[str]:
    """The host's proxy settings, as Docker's predefined build arguments (kept out of history)."""
    args: list[str] = []
    for name in PROXY_VARS:
        if os.environ.get(name):
            args += ["--build-arg", f"{name}={os.environ[name]}"]
    return args


class Engine:
    def __init__(self) -> None:
        self._dockerd: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self.notes: list[str] = []  # what was started, pulled or built, for the test output
        self._ensured: set[str] = set()

    # -- the daemon --------------------------------------------------------------------------

    def responds(self) -> bool:
        if shutil.which("docker") is None:
            return False
        return run(["docker", "info"], 30, check=False).returncode == 0

    def start(self) -> None:
        """Make `docker` usable, or raise EngineUnavailable with the reason."""
        if shutil.which("docker") is None:
            raise EngineUnavailable("no docker client (./dev test installs docker.io as root)")
        if shutil.which("docker-compose") is None:
            raise EngineUnavailable("no docker-compose (./dev test installs it as root)")
        if self.responds():
            return
        if os.geteuid() != 0:
            raise EngineUnavailable(
                "no Docker engine answers and only root can start dockerd here "
                "(start Docker, or join the docker group)"
            )
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineUnavailable("no dockerd (./dev test installs docker.io as root)")
        fd, log = tempfile.mkstemp(prefix="pg-schema-sync-dockerd-", suffix=".log")
        self._log = Path(log)
        # Its own session: a Ctrl-C in the terminal reaches pytest, which then stops dockerd.
        self._dockerd = subprocess.Popen(
            [dockerd], stdout=fd, stderr=fd, stdin=subprocess.DEVNULL, start_new_session=True
        )
        os.close(fd)
        atexit.register(self.stop)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # A terminated test run then unwinds like Ctrl-C: stacks down, dockerd stopped.
            signal.signal(signal.SIGTERM, _interrupt)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._dockerd.poll() is not None:
                break
            if self.responds():
                self.notes.append(f"started dockerd (pid {self._dockerd.pid}), stopped at the end")
                return
            time.sleep(0.5)
        tail = self._log.read_text(errors="replace")[-2000:]
        self.stop()
        raise EngineUnavailable(f"dockerd exited or did not answer within 60 s:\n{tail}")

    def stop(self) -> None:
        """Stop the dockerd this process started (its containers stop with it); idempotent."""
        proc, self._dockerd = self._dockerd, None
        if proc is None:
            return
        if proc.poll() is not None:
            return  # it died: its log (named in the error) stays for a look
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    def replace_image(self, image: str, build: list[str], timeout: float) -> None:
        """Run `docker build ... -t image`, then remove the image that had the tag before, so
        that rebuilds do not pile up untagged images (it stays if a container still uses it)."""
        before = run(["docker", "image", "inspect", "-f", "{{.Id}}", image], 30, check=False)
        run(build, timeout, env=docker_env())
        after = run(["docker", "image", "inspect", "-f", "{{.Id}}", image], 30)
        if before.returncode == 0 and before.stdout != after.stdout:
            run(["docker", "image", "rm", before.stdout.strip()], 120, check=False)

    # -- images ------------------------------------------------------------------------------

    def labels(self, image: str) -> dict[str, str] | None:
        """The image's labels ({} when it has none), None when there is no such image."""
        proc = run(["docker", "image", "inspect", image], 30, check=False)
        if proc.returncode != 0:
            return None
        found = json.loads(proc.stdout)[0]["Config"].get("Labels")
        return dict(found or {})

    def ensure_image(self, image: str, recipe: str) -> None:
        """`image` exists afterwards: as it was, pulled, or as a stand-in built from `recipe`."""
        if image in self._ensured:
            return
        self._ensured.add(image)
        key = self._recipe_key(recipe)
        labels = self.labels(image)
        if labels is not None and LABEL not in labels:
            return  # the real image
        if labels is not None and labels[LABEL] == key:
            self.notes.append(f"{image}: cached stand-in")
            return
        if labels is None and run(["docker", "pull", image], 120, check=False).returncode == 0:
            self.notes.append(f"{image}: pulled")
            return
        t0 = time.monotonic()
        self._build_standin(image, recipe, key)
        self.notes.append(f"{image}: stand-in built in {time.monotonic() - t0:.0f} s")

    def _recipe_key(self, recipe: str) -> str:
        """A hash of the base's sources, the recipe and every file it copies in."""
        dockerfile = (STANDINS / f"{recipe}.Dockerfile").read_text()
        h = hashlib.sha256()
        h.update(base_sources().encode() + b"\0" + dockerfile.encode())
        for script in sorted(STANDINS.glob("*.sh")):
            if script.name in dockerfile:
                h.update(script.name.encode() + b"\0" + script.read_bytes())
        for name, content in host_index_files().items():
            if name in dockerfile:
                h.update(name.encode() + b"\0" + content)
        return h.hexdigest()[:16]

    def _build_standin(self, image: str, recipe: str, key: str) -> None:
        self._ensure_base()
        with tempfile.TemporaryDirectory(prefix="pg-schema-sync-standin-") as tmp:
            ctx = Path(tmp)
            shutil.copy(STANDINS / f"{recipe}.Dockerfile", ctx / "Dockerfile")
            for script in STANDINS.glob("*.sh"):
                shutil.copy(script, ctx / script.name)
            for name, content in host_index_files().items():
                (ctx / name).write_bytes(content)
            self.replace_image(
                image,
                [
                    "docker",
                    "build",
                    "--build-arg",
                    f"BASE={BASE_IMAGE}",
                    *proxy_build_args(),
                    "--label",
                    f"{LABEL}={key}",
                    "-t",
                    image,
                    str(ctx),
                ],
                900,
            )

    def _ensure_base(self) -> None:
        """A minimal Debian image from debootstrap, with the host's apt sources."""
        sources = base_sources()
        key = hashlib.sha256(sources.encode()).hexdigest()[:16]
        if (self.labels(BASE_IMAGE) or {}).get(LABEL) == key:
            return
        tarball = CACHE_DIR / f"{SUITE}-minbase-{key}.tar"
        if not tarball.exists():
            self._debootstrap(tarball, sources)
        with tarball.open("rb") as f:
            subprocess.run(
                ["docker", "import", "--change", f"LABEL {LABEL}={key}", "-", BASE_IMAGE],
                stdin=f,
                capture_output=True,
                check=True,
                timeout=300,
            )

    def _debootstrap(self, tarball: Path, sources: str) -> None:
        if shutil.which("debootstrap") is None:
            raise EngineUnavailable("no debootstrap to build stand-in images (apt install it)")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR))
        try:
            t0 = time.monotonic()
            run(
                ["debootstrap", "--variant=minbase", SUITE, str(rootfs), host_mirror()],
                600,
            )
            (rootfs / "etc/apt/sources.list").write_text(sources)
            # As in Docker's own Debian images: no documentation, no apt caches kept.
            (rootfs / "etc/dpkg/dpkg.cfg.d/docker-minimal").write_text(
                "path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\n"
                "path-exclude /usr/share/info/*\n"
            )
            (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
                'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
                'APT::Install-Recommends "false";\n'
            )
            shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
            partial = tarball.with_suffix(".partial")
            run(
                [
                    "tar",
                    "-C",
                    str(rootfs),
                    "--exclude=./proc/*",
                    "--exclude=./sys/*",
                    "--exclude=./dev/*",
                    "-cf",
                    str(partial),
                    ".",
                ],
                300,
            )
            partial.rename(tarball)
            self.notes.append(
                f"debootstrap {SUITE} rootfs in {time.monotonic() - t0:.0f} s -> {tarball}"
            )
        finally:
            # debootstrap mounts /proc (and more) inside while it runs; if one is still there
            # after a failure, unmount it, and never delete through a mount.
            for mount in reversed(mounts_under(rootfs)):
                run(["umount", "--lazy", mount], 60, check=False)
            if not mounts_under(rootfs):
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(rootfs)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p.startswith(prefix)]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- what the host uses ----------------------------------------------------------------------


def _apt_entries() -> list[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of the host's Debian apt sources, both file formats."""
    entries: list[tuple[str, list[str], list[str]]] = []
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in files:
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith("#"):
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            if "deb" in fields.get("types", "").split() and "uris" in fields:
                for uri in fields["uris"].split():
                    entries.append(
                        (
                            uri,
                            fields.get("suites", "").split(),
                            fields.get("components", "").split(),
                        )
                    )
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["deb"]:
                words = [w for w in words[1:] if not w.startswith("[")]
                if len(words) >= 2:
                    entries.append((words[0], [words[1]], words[2:]))
    return [e for e in entries if any(s.startswith(SUITE) for s in e[1])]


def host_mirror() -> str:
    for uri, suites, _ in _apt_entries():
        if SUITE in suites:
            return uri
    raise EngineUnavailable(f"no Debian {SUITE} mirror in the host's apt sources")


def base_sources() -> str:
    """sources.list for the stand-ins: the host's Debian bookworm entries, main only."""
    lines = []
    for uri, suites, _ in _apt_entries():
        for suite in suites:
            if suite.startswith(SUITE):
                lines.append(f"deb {uri} {suite} main\n")
    return "".join(dict.fromkeys(lines))


def _pip_config() -> dict[str, str]:
    """The host's pip settings that say where packages come from (files, then environment)."""
    found: dict[str, str] = {}
    parser = configparser.ConfigParser()
    home = Path.home()
    parser.read(
        [
            "/etc/pip.conf",
            "/etc/xdg/pip/pip.conf",
            str(home / ".pip/pip.conf"),
            str(home / ".config/pip/pip.conf"),
        ]
    )
    for section in ("global", "install"):
        if parser.has_section(section):
            for key in ("index-url", "extra-index-url", "trusted-host", "cert"):
                if parser.has_option(section, key):
                    found[key] = parser.get(section, key)
    for key in ("index-url", "extra-index-url", "trusted-host", "cert"):
        value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            found[key] = value
    return found


def _remote(urls: str) -> list[str]:
    # Local file indexes and wheel folders are not inside the build.
    return [u for u in urls.split() if u.startswith(("http://", "https://"))]


def host_index_files() -> dict[str, bytes]:
    """host-ca.crt, host-pip.conf and host-uv.toml for the Python stand-in's build context."""
    pip = _pip_config()
    candidates = [
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        pip.get("cert"),
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    ca = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
    pip_conf = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    uv_conf = ["native-tls = true"]
    index = _remote(os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or "")
    index = index or _remote(pip.get("index-url", ""))
    if index:
        pip_conf.append(f"index-url = {index[0]}")
        uv_conf.append(f'index-url = "{index[0]}"')
    extra = _remote(pip.get("extra-index-url", ""))
    if extra:
        pip_conf.append(f"extra-index-url = {' '.join(extra)}")
    if pip.get("trusted-host"):
        pip_conf.append(f"trusted-host = {pip['trusted-host']}")
    return {
        "host-ca.crt": ca.read_bytes() if ca else b"",
        "host-pip.conf": ("\n".join(pip_conf) + "\n").encode(),
        "host-uv.toml": ("\n".join(uv_conf) + "\n").encode(),
    }
