"""Names anyone with CREATE can write -- quotes, spaces, newlines, ` ON `, comment and header
look-alikes -- planned both ways: the plan's SQL quotes them, its comments show them without
letting one end the comment, and both oracles still agree."""

from __future__ import annotations

import asyncio

from service.demo.cluster import ScratchCluster
from service.plan import render
from tests.plan_support import check, drop_database, dump_of, plan_both_ways, read, reader

BOTH = """
CREATE SCHEMA "we""ird schema";
CREATE TABLE "we""ird schema"."t; DROP TABLE x --" ("a b" integer, "c""d" text);
CREATE FUNCTION "we""ird schema"."f ON g"("x y" integer) RETURNS integer LANGUAGE sql
    AS $$ SELECT 1 $$;
"""
ONLY_TO = """
ALTER TABLE "we""ird schema"."t; DROP TABLE x --" ADD COLUMN "new
line" text DEFAULT 'it''s -- not a comment';
ALTER TABLE "we""ird schema"."t; DROP TABLE x --" ALTER COLUMN "a b" TYPE bigint;
COMMENT ON COLUMN "we""ird schema"."t; DROP TABLE x --"."c""d" IS e'multi\\nline -- note';
CREATE TABLE "we""ird schema"."
-- Name: fake; Type: TABLE; Schema: public; Owner: x
" (id integer PRIMARY KEY);
CREATE FUNCTION "we""ird schema".touch() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER "trg ON t" BEFORE UPDATE ON "we""ird schema"."t; DROP TABLE x --"
    FOR EACH ROW EXECUTE FUNCTION "we""ird schema".touch();
CREATE OR REPLACE FUNCTION "we""ird schema"."f ON g"("x y" integer) RETURNS integer
    LANGUAGE sql AS $$ SELECT 2 $$;
"""


async def test_hostile_names_are_planned_both_ways(cluster: ScratchCluster) -> None:
    a, b = "hostile_from", "hostile_to"
    try:
        for name, sql in ((a, BOTH), (b, BOTH + ONLY_TO)):
            await drop_database(cluster, name)
            await asyncio.to_thread(cluster.create_database, name)
            await asyncio.to_thread(cluster.psql, name, sql)
        async with reader(cluster, a) as ra, reader(cluster, b) as rb:
            a_data, b_data = await asyncio.gather(read(cluster, a, ra), read(cluster, b, rb))
            forward, backward = await plan_both_ways(ra, rb, a_data, b_data)
        # Each statement's comment is one line: a name's newline is written out, not run.
        comments = [render.comment(s) for s in forward.statements]
        assert all("\n" not in c for c in comments)
        assert any("\\n-- Name: fake; Type: TABLE" in c for c in comments), comments
        there = await check(cluster, forward, a, b_data, dump_of(b_data))
        assert there.converged, there.why()
        back = await check(cluster, backward, b, a_data, dump_of(a_data))
        assert back.converged, back.why()
    finally:
        await asyncio.gather(drop_database(cluster, a), drop_database(cluster, b))
