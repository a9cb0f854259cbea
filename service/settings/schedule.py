"""The daemon's settings: its schedule, its own files (state and lock), health, and the catalog
probe's skipped cycles and watch mode. Kept apart so the model only mixes them in."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DaemonFields(BaseModel):
    """What `pg-schema-sync run` does between syncs (each target may override some)."""

    # A mixin, never validated on its own: building its validator at import would be wasted
    # (pydantic builds the classes that are validated, Settings and TargetOverrides, on first use).
    model_config = ConfigDict(defer_build=True)

    # Daemon (pg-schema-sync run)
    schedule: str = Field(
        default="*/15 * * * *",
        description="When the daemon syncs: a 5-field cron expression (0 and 7 are Sunday; "
        "day-of-month OR day-of-week, as in cron)",
    )
    timezone: str = Field(default="UTC", description="IANA time zone the schedule is read in")
    sync_on_start: bool = Field(default=True, description="The daemon syncs once at start-up")
    misfire_grace_s: int = Field(
        default=60,
        ge=1,
        description="A scheduled run missed by more than this is skipped, not run late",
    )
    stop_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="After SIGTERM, how long a running sync may finish before it is cancelled",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Folder of the daemon's state file (read by `health`) and lock file; "
        "default: backup_dir (with targets: <state_dir>/<name>, else each target's "
        "backup_dir). Never the schema folder: those files are not for committing",
        examples=["/var/lib/pg-schema-sync"],
    )
    state_file: Path | None = Field(
        default=None,
        description="The daemon's state file; default .pg-schema-sync-state.json in state_dir",
        examples=["/var/lib/pg-schema-sync/state.json"],
    )
    lock_file: Path | None = Field(
        default=None,
        description="The daemon's lock file (one daemon per state): default "
        ".pg-schema-sync.lock in state_dir",
        examples=["/var/lib/pg-schema-sync/daemon.lock"],
    )
    health_max_age_s: int | None = Field(
        default=None,
        ge=1,
        description="`health` fails when the last success is older; unset: one missed scheduled "
        "run (+5 min) is allowed",
        examples=[3600],
    )
    retry_backoff_max_s: float = Field(
        default=300.0,
        ge=1,
        description="Cap on early retries after connection failures (5 s, 10 s, 20 s, ...)",
    )

    # Catalog probe: skipped cycles and watch mode
    full_sync_interval_s: float = Field(
        default=86_400.0,
        ge=0,
        description="A cycle whose catalog probe finds nothing changed is skipped, but a full "
        "read runs at least this often anyway; 0 = never skip",
    )
    watch_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="Probe the catalog every N s between scheduled syncs and sync on a change; "
        "off when unset",
        examples=[10],
    )
    watch_settle_s: float = Field(
        default=5.0,
        ge=0,
        description="Watch mode syncs once the fingerprint has been stable this long "
        "(one sync per migration)",
    )
    watch_settle_max_s: float = Field(
        default=60.0, gt=0, description="... or after this long even if it keeps changing"
    )
    listen_channel: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Push mode (needs watch_interval_s): probe at once on a NOTIFY on this "
        "channel (deploy/pg-schema-sync-notify.sql, installed by you, never by us)",
        examples=["pg_schema_sync"],
    )
    # Anyone who may connect may NOTIFY: a notification probes no sooner than this after the
    # previous probe began (docs/push-mode.md).
    listen_min_gap_s: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Push mode: a notification probes no sooner than this after the previous "
        "probe began (anyone who may connect may NOTIFY)",
    )
