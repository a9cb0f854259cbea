"""Pure pieces: connection strings, drift, report, secret scrubbing."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime

import structlog

from service.compare.drift import Change, compare, text_diff, whole_diff
from service.compare.inventory import DbObject, Inventory
from service.compare.report import SummaryFacts, render_summary
from service.logs import configure_logging, get_logger, redact, register_secret, scrub
from service.production.conninfo import ConnInfo


def test_socket_uri_with_query_host_and_port() -> None:
    info = ConnInfo.parse("postgresql://alice@/prod?host=/run/pg&port=5433")
    assert (info.user, info.dbname, info.host, info.port) == ("alice", "prod", "/run/pg", 5433)
    assert info.password is None


def test_password_leaves_params_and_reaches_only_the_child_env() -> None:
    info = ConnInfo.parse("postgresql://bob:s%40cret@db.example:6543/app?sslmode=require")
    assert info.password == "s@cret"
    assert "s@cret" not in repr(info) and "s@cret" not in info.display()
    env = info.child_env({"PGPASSWORD": "inherited", "PATH": "/bin"})
    assert env["PGPASSWORD"] == "s@cret" and env["PGHOST"] == "db.example"
    assert env["PGSSLMODE"] == "require" and env["PATH"] == "/bin"


def test_keyword_conninfo_and_env_precedence() -> None:
    env = ConnInfo.from_env({"PGHOST": "envhost", "PGUSER": "envuser", "PGPASSWORD": "pw"})
    explicit = ConnInfo.parse("host=h1 dbname='my db' port=5444")
    merged = env.merged(explicit)
    assert merged.params == {"host": "h1", "user": "envuser", "dbname": "my db", "port": "5444"}
    assert merged.password == "pw"


def _inv(**defs: str) -> Inventory:
    return Inventory.of(DbObject(k.split("_")[0], k, v) for k, v in defs.items())


def test_drift_names_added_removed_changed_with_diffs() -> None:
    old = _inv(table_a="id int", table_b="x text", function_f="select 1")
    new = _inv(table_a="id int\nname text", function_f="select 1", view_v="select 2")
    drift = compare(old, new)
    got = [(i.change, i.name) for i in drift.items]
    assert got == [
        (Change.CHANGED, "table_a"),
        (Change.REMOVED, "table_b"),
        (Change.ADDED, "view_v"),
    ]
    assert "+name text" in drift.items[0].diff
    # A removed table breaks clients; a change no rule can read counts as the worst.
    assert drift.headline() == "3 changes (2 breaking, 1 compatible)"
    assert [i.impact.value for i in drift.items] == ["breaking", "breaking", "compatible"]
    assert compare(new, new).items == ()


def test_added_and_removed_objects_read_as_a_unified_diff_of_the_whole_text() -> None:
    drift = compare(_inv(table_b="x text"), _inv(table_a="id int\nname text"))
    assert drift.items[0].diff == (
        "--- a/table table_a\n+++ b/table table_a\n@@ -0,0 +1,2 @@\n+id int\n+name text\n"
    )
    assert (
        drift.items[1].diff == "--- a/table table_b\n+++ b/table table_b\n@@ -1 +0,0 @@\n-x text\n"
    )


def test_whole_diff_is_what_difflib_wrote_for_any_text() -> None:
    # The fingerprint of a drift hashes its diffs: they must not change by a byte. Odd line
    # breaks (str.splitlines knows more than \n), missing final newlines, empty texts.
    pieces = [
        "a",
        "b",
        " ",
        "\n",
        "\r",
        "\r\n",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x85",
        "\u2028",
        "é",
        "--- +",
    ]
    for seed in range(5000):
        rng = random.Random(seed)
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        label = "table " + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 3)))
        assert whole_diff(text, label) == text_diff("", text, label), (text, label)
        assert whole_diff(text, label, "-") == text_diff(text, "", label), (text, label)


def test_drift_fingerprint_is_stable_and_specific() -> None:
    a, b = _inv(table_a="1"), _inv(table_a="2")
    assert compare(a, b).fingerprint() == compare(a, b).fingerprint()
    assert compare(a, b).fingerprint() != compare(b, a).fingerprint()


def test_drift_fingerprint_ignores_which_side_the_diff_headers_name() -> None:
    # Headers say files/ and production/ now (a/ and b/ before): an unresolved drift that was
    # alerted on must stay the same drift, or every upgrade would alert on it once more.
    a = _inv(table_a="1", table_gone="x")
    b = _inv(table_a="2", table_new="y")
    before_labels = compare(a, b)
    labelled = compare(a, b, sides=("files", "production"))
    assert "--- files/" in labelled.items[0].diff
    assert labelled.fingerprint() == before_labels.fingerprint()
    assert labelled.fingerprint() != compare(a, _inv(table_a="3", table_new="y")).fingerprint()


def test_inventory_json_round_trip() -> None:
    inv = _inv(table_a="id int", function_f="body ü")
    assert Inventory.from_json(inv.to_json()) == inv


def test_inventory_json_is_what_json_dumps_with_indent_wrote() -> None:
    # Saved inventories and backups are compared by hash: the text must not move by a byte.
    pieces = ["a", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028", "😀", " ", "{"]
    for seed in range(500):
        rng = random.Random(seed)
        inv = Inventory.of(
            DbObject(
                rng.choice(["table", "view", "é"]),
                "".join(rng.choice(pieces) for _ in range(rng.randint(0, 5))),
                "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20))),
            )
            for _ in range(rng.randint(0, 4))
        )
        doc = {
            "format": 1,
            "counts": inv.counts(),
            "objects": [
                {
                    "kind": o.kind,
                    "name": o.name,
                    "fingerprint": o.fingerprint,
                    "definition": o.definition,
                }
                for o in inv
            ],
        }
        assert inv.to_json() == json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def test_summary_lists_each_change_with_diff_and_hashes() -> None:
    drift = compare(_inv(table_a="id int"), _inv(table_a="id int\nnote text"))
    text = render_summary(
        SummaryFacts(
            when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            run_id="r1",
            source="app@db:5432/prod",
            server_version="15.18",
            pg_dump_version="15.18",
            counts={"table": 1},
            drift=drift,
            first_run=False,
            file_hashes={"production-schema.sql": "ab" * 32},
        )
    )
    assert "# Schema sync 2026-01-02 03:04:05 UTC" in text
    assert "### changed: table `table_a`" in text and "+note text" in text
    assert "ab" * 32 in text


def test_redaction_of_uris_keywords_and_known_secrets() -> None:
    register_secret("hunter2-pw")
    assert "hunter2-pw" not in redact("failed: hunter2-pw")
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert scrub({"dsn": "x", "nested": {"password": "p"}, "ok": 1}) == {
        "dsn": "***",
        "nested": {"password": "***"},
        "ok": 1,
    }


def test_drift_without_diffs_names_the_same_changes() -> None:
    old = _inv(table_a="id int", table_b="x text")
    new = _inv(table_a="id int\nname text", view_v="select 2")
    full, bare = compare(old, new), compare(old, new, diffs=False)
    assert [i.as_json() for i in bare.items] == [i.as_json() for i in full.items]
    assert all(i.diff == "" for i in bare.items)
    assert all(i.diff for i in full.items)


def test_console_logs_show_control_characters_instead_of_running_them() -> None:
    # A table named with an escape sequence reaches log events (drift.detected names objects);
    # on a terminal it must read as text. JSON escapes them itself and stays exact.
    saved = structlog.get_config()
    try:
        for fmt in ("console", "json"):
            out = io.StringIO()
            configure_logging(fmt, "info", stream=out)
            get_logger().warning("drift.detected", name="public.t\x1b[2J\x1b]0;pwned\x07")
            text = out.getvalue()
            assert "\x1b" not in text and "\x07" not in text, (fmt, text)
            assert ("\\x1b[2J" in text) == (fmt == "console"), (fmt, text)
            if fmt == "json":
                line = json.loads(text)
                assert line["name"] == "public.t\x1b[2J\x1b]0;pwned\x07"
    finally:
        structlog.configure(**saved)
