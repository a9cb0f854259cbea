"""`pg-schema-sync run`: scheduler, per-target runners, signals, health, metrics, alerts."""
