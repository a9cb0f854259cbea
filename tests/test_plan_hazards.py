"""What each kind of statement risks: a table of statements with their expected hazards and
lock, all from one plan between two real databases (which must also converge)."""

from __future__ import annotations

import asyncio

import pytest

from service.demo.cluster import ScratchCluster
from tests.plan_support import check, drop_database, dump_of, plan_both_ways, read, reader

FROM = """
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE old_stuff (a integer);
CREATE TABLE t (id integer, gone text, wide integer, loose varchar(10), num text,
                must integer, mood mood);
CREATE TABLE fresh_parent (id integer PRIMARY KEY);
CREATE TABLE r (id integer, parent integer);
CREATE VIEW old_view AS SELECT 1 AS one;
CREATE FUNCTION old_function() RETURNS integer LANGUAGE sql AS 'SELECT 1';
ALTER TABLE r ADD CONSTRAINT later CHECK (id > 0) NOT VALID;
GRANT SELECT ON r TO PUBLIC;
CREATE FUNCTION owned() RETURNS integer LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION owned() OWNER TO hazard_owner_a;
CREATE TEXT SEARCH CONFIGURATION owned_tsc (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION owned_tsc OWNER TO hazard_owner_a;
"""
TO = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t (id integer PRIMARY KEY, wide bigint, loose text, num integer,
                must integer NOT NULL, mood mood, added text);
ALTER TABLE t ADD CONSTRAINT positive CHECK (id > 0);
ALTER TABLE t ADD CONSTRAINT positive_later CHECK (wide > 0) NOT VALID;
CREATE INDEX t_added_idx ON t (added);
ALTER TABLE t SET UNLOGGED;
CREATE TABLE fresh_parent (id integer PRIMARY KEY);
CREATE TABLE r (id integer, parent integer REFERENCES fresh_parent);
ALTER TABLE r ADD CONSTRAINT later CHECK (id > 0);
CREATE TABLE brand_new (id integer PRIMARY KEY, label text);
CREATE INDEX brand_new_label_idx ON brand_new (label);
GRANT SELECT ON fresh_parent TO PUBLIC;
CREATE FUNCTION owned() RETURNS integer LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION owned() OWNER TO hazard_owner_b;
CREATE TEXT SEARCH CONFIGURATION owned_tsc (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION owned_tsc OWNER TO hazard_owner_b;
"""
# Roles are the cluster's: made once, before either database.
ROLES = """
DO $$ BEGIN CREATE ROLE hazard_owner_a; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE hazard_owner_b; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
"""
# statement's beginning -> (hazards, lock)
EXPECTED = {
    "DROP TABLE public.old_stuff": (
        {"deletes_data", "breaks_clients", "access_exclusive_lock"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t DROP COLUMN gone": (
        {"deletes_data", "breaks_clients", "access_exclusive_lock"}, "ACCESS EXCLUSIVE"),
    # Breaking as drift impact judges it: bigint does not cast back to integer unasked.
    "ALTER TABLE public.t ALTER COLUMN wide TYPE bigint": (
        {"rewrites_table", "access_exclusive_lock", "breaks_clients"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ALTER COLUMN loose TYPE text": (
        {"access_exclusive_lock"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ALTER COLUMN num TYPE integer USING num::integer": (
        {"deletes_data", "rewrites_table", "access_exclusive_lock", "breaks_clients"},
        "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ALTER COLUMN must SET NOT NULL": (
        {"validates_constraint", "access_exclusive_lock", "breaks_clients"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ADD COLUMN added text": ({"access_exclusive_lock"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ADD CONSTRAINT positive CHECK": (
        {"validates_constraint", "access_exclusive_lock", "breaks_clients"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ADD CONSTRAINT positive_later CHECK": (
        {"access_exclusive_lock", "breaks_clients"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t ADD CONSTRAINT t_pkey PRIMARY KEY": (
        {"index_build", "access_exclusive_lock", "breaks_clients"}, "ACCESS EXCLUSIVE"),
    "ALTER TABLE public.t SET UNLOGGED": (
        {"rewrites_table", "access_exclusive_lock", "breaks_clients"}, "ACCESS EXCLUSIVE"),
    "CREATE INDEX t_added_idx ON public.t": ({"index_build"}, "SHARE"),
    "ALTER TABLE public.r VALIDATE CONSTRAINT later": (
        {"validates_constraint"}, "SHARE UPDATE EXCLUSIVE"),
    "ALTER TABLE public.r ADD CONSTRAINT r_parent_fkey FOREIGN KEY": (
        {"validates_constraint", "breaks_clients"}, "SHARE ROW EXCLUSIVE"),
    "ALTER TYPE public.mood ADD VALUE 'happy'": ({"not_transactional"}, "none"),
    # A privilege taken away breaks its users; one given does not.
    "REVOKE SELECT ON TABLE public.r FROM PUBLIC": ({"breaks_clients"}, "none"),
    "GRANT SELECT ON TABLE public.fresh_parent TO PUBLIC": (set(), "none"),
    # A new owner takes the old one's rights to a function (breaking, as drift impact says);
    # to a text search configuration clients hold no privileges (cosmetic).
    "ALTER FUNCTION public.owned() OWNER TO hazard_owner_b": ({"breaks_clients"}, "none"),
    "ALTER TEXT SEARCH CONFIGURATION public.owned_tsc OWNER TO hazard_owner_b": (set(), "none"),
    "DROP VIEW public.old_view": ({"breaks_clients", "access_exclusive_lock"}, "ACCESS EXCLUSIVE"),
    "DROP FUNCTION public.old_function()": ({"breaks_clients"}, "none"),
    "CREATE TABLE public.brand_new": (set(), "none"),
    "CREATE INDEX brand_new_label_idx ON public.brand_new": (set(), "none"),
}  # fmt: skip


@pytest.mark.parametrize("concurrently", [False, True], ids=["in the transaction", "concurrently"])
async def test_each_statement_says_what_it_risks(
    cluster: ScratchCluster, concurrently: bool
) -> None:
    a, b = "hazards_from", "hazards_to"
    await asyncio.to_thread(cluster.psql, "postgres", ROLES)
    try:
        for name, sql in ((a, FROM), (b, TO)):
            await drop_database(cluster, name)
            await asyncio.to_thread(cluster.create_database, name)
            await asyncio.to_thread(cluster.psql, name, sql)
        async with reader(cluster, a) as ra, reader(cluster, b) as rb:
            a_data, b_data = await asyncio.gather(read(cluster, a, ra), read(cluster, b, rb))
            plan, _ = await plan_both_ways(ra, rb, a_data, b_data, concurrently=concurrently)
        found = {}
        for s in plan.statements:
            for start in EXPECTED:
                if s.sql.startswith(start):
                    found[start] = ({h.value for h in s.hazards}, s.lock, s.transactional)
        if concurrently:
            assert found.pop("CREATE INDEX t_added_idx ON public.t", None) is None
            index = next(s for s in plan.statements if "t_added_idx" in s.sql)
            assert index.sql.startswith("CREATE INDEX CONCURRENTLY t_added_idx")
            assert {h.value for h in index.hazards} == {"not_transactional"}
            assert index.lock == "SHARE UPDATE EXCLUSIVE" and not index.transactional
            assert plan.statements[-1] == index  # after the transaction
        expected = {k: v for k, v in EXPECTED.items() if not (concurrently and "t_added_idx" in k)}
        assert {k: v[:2] for k, v in found.items()} == expected
        outcome = await check(cluster, plan, a, b_data, dump_of(b_data))
        assert outcome.converged, outcome.why()
    finally:
        await asyncio.gather(drop_database(cluster, a), drop_database(cluster, b))
