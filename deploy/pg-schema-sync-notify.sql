-- Optional push mode for pg-schema-sync (docs/probe.md, "Push mode"): tell the daemon at once when
-- DDL commits, instead of waiting for its next watch probe.
--
-- Install it yourself, as a superuser, in each production database the daemon watches:
--     psql -d app -f deploy/pg-schema-sync-notify.sql
-- then set listen_channel = "pg_schema_sync" (with watch_interval_s) in the daemon's config.
-- The daemon never installs it: it only ever reads production.
--
-- The notification is only a hint: NOTIFY is delivered when the DDL's transaction commits,
-- the daemon then runs its catalog probe, and the probe decides. Event triggers do not fire
-- for shared objects (roles, databases, tablespaces: a role rename changes every owner in the
-- dump), for CREATE/ALTER/DROP EVENT TRIGGER itself, when event triggers are disabled
-- (single-user mode, event_triggers = off on PostgreSQL 17+), or for changes made by
-- pg_upgrade or direct catalog updates. The watch probe still runs every watch_interval_s and
-- catches all of those.
--
-- These objects are part of the schema like any other: the next sync adds the function and
-- the two event triggers to the schema files (and reports them once as drift).

CREATE OR REPLACE FUNCTION public.pg_schema_sync_notify() RETURNS event_trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('pg_schema_sync', TG_TAG);
END
$$;

DROP EVENT TRIGGER IF EXISTS pg_schema_sync_ddl;
CREATE EVENT TRIGGER pg_schema_sync_ddl ON ddl_command_end
    EXECUTE FUNCTION public.pg_schema_sync_notify();

DROP EVENT TRIGGER IF EXISTS pg_schema_sync_drop;
CREATE EVENT TRIGGER pg_schema_sync_drop ON sql_drop
    EXECUTE FUNCTION public.pg_schema_sync_notify();
