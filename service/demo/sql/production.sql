-- pg-schema-sync demo: the "production" schema of a small hiking-trails app.
--
-- Trails are PostGIS line strings; routing.edges is the pgRouting graph built from them,
-- and routing.find_route() asks pgr_dijkstra for the shortest walk between two junctions.
-- Loads with `psql -v ON_ERROR_STOP=1` into a fresh database whose superuser is postgres.

SET client_min_messages = warning;

CREATE EXTENSION postgis;
CREATE EXTENSION pgrouting;

-- Roles are cluster-wide, so create them only if an earlier load has not.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trails_app') THEN
        CREATE ROLE trails_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trails_readonly') THEN
        CREATE ROLE trails_readonly NOLOGIN;
    END IF;
END
$$;

CREATE SCHEMA trails;
CREATE SCHEMA routing;
COMMENT ON SCHEMA trails IS 'Trails, trailheads and regions as hikers see them';
COMMENT ON SCHEMA routing IS 'pgRouting graph derived from trails.trails';

-- ---------------------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------------------
CREATE TYPE trails.difficulty AS ENUM ('easy', 'moderate', 'hard', 'expert');

-- Metres above sea level; the range catches feet typed into a metres field.
CREATE DOMAIN trails.elevation_m AS integer
    CONSTRAINT elevation_m_plausible CHECK (VALUE BETWEEN -500 AND 9000);

-- Human-readable condition report numbers, shared by every region.
CREATE SEQUENCE trails.report_no_seq START WITH 1000 INCREMENT BY 1;

-- ---------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------
CREATE TABLE trails.regions (
    region_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text NOT NULL UNIQUE,
    boundary  geometry(MultiPolygon, 4326)
);

CREATE TABLE trails.trailheads (
    trailhead_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_id      integer NOT NULL REFERENCES trails.regions ON DELETE RESTRICT,
    name           text NOT NULL,
    elevation      trails.elevation_m,
    parking_spaces integer CHECK (parking_spaces >= 0),
    location       geometry(Point, 4326) NOT NULL
);

CREATE TABLE trails.trails (
    trail_id       integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_id      integer NOT NULL REFERENCES trails.regions ON DELETE RESTRICT,
    trailhead_id   integer REFERENCES trails.trailheads ON DELETE SET NULL,
    name           text NOT NULL,
    difficulty     trails.difficulty NOT NULL DEFAULT 'moderate',
    elevation_gain trails.elevation_m,
    length_m       double precision,  -- kept by trails.trails_before_write()
    is_open        boolean NOT NULL DEFAULT true,
    geom           geometry(LineString, 4326) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trails_name_per_region UNIQUE (region_id, name),
    CONSTRAINT trails_geom_valid CHECK (ST_IsValid(geom))
);
COMMENT ON TABLE trails.trails IS 'One signposted trail; geometry in WGS 84';
COMMENT ON COLUMN trails.trails.length_m IS 'Length on the spheroid, computed on write';

CREATE TABLE trails.condition_reports (
    report_no   bigint PRIMARY KEY DEFAULT nextval('trails.report_no_seq'),
    trail_id    integer NOT NULL REFERENCES trails.trails ON DELETE CASCADE,
    reported_at timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL CHECK (length(note) BETWEEN 1 AND 2000)
);
ALTER SEQUENCE trails.report_no_seq OWNED BY trails.condition_reports.report_no;

CREATE TABLE routing.vertices (
    id   bigint PRIMARY KEY,
    geom geometry(Point, 4326) NOT NULL
);

CREATE TABLE routing.edges (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trail_id     integer NOT NULL REFERENCES trails.trails ON DELETE CASCADE,
    source       bigint NOT NULL REFERENCES routing.vertices,
    target       bigint NOT NULL REFERENCES routing.vertices,
    cost         double precision NOT NULL CHECK (cost >= 0),
    reverse_cost double precision NOT NULL,  -- negative = one-way (pgRouting convention)
    geom         geometry(LineString, 4326) NOT NULL
);
COMMENT ON TABLE routing.edges IS 'Routable segments; cost is walking time in minutes';

-- ---------------------------------------------------------------------------------------
-- Indexes
-- ---------------------------------------------------------------------------------------
CREATE INDEX trails_geom_gist ON trails.trails USING gist (geom);
CREATE INDEX trailheads_location_gist ON trails.trailheads USING gist (location);
CREATE INDEX edges_geom_gist ON routing.edges USING gist (geom);
CREATE INDEX trails_region_difficulty_idx ON trails.trails (region_id, difficulty);
CREATE INDEX condition_reports_trail_idx ON trails.condition_reports (trail_id, reported_at DESC);
CREATE INDEX edges_source_idx ON routing.edges (source);
CREATE INDEX edges_target_idx ON routing.edges (target);

-- ---------------------------------------------------------------------------------------
-- Functions and triggers
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION trails.trails_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.length_m := ST_Length(NEW.geom::geography);
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION trails.trails_before_write() IS 'Keeps length_m and updated_at honest';

CREATE TRIGGER trails_before_write
    BEFORE INSERT OR UPDATE ON trails.trails
    FOR EACH ROW EXECUTE FUNCTION trails.trails_before_write();

-- Shortest walk between two junctions; one row per edge, in walking order.
CREATE FUNCTION routing.find_route(source integer, target integer)
RETURNS TABLE (seq integer, edge_id bigint, trail_name text, minutes double precision,
               geom geometry)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT d.seq, e.id, t.name, d.cost, e.geom
    FROM pgr_dijkstra(
            'SELECT id, source, target, cost, reverse_cost FROM routing.edges',
            find_route.source, find_route.target, directed => true) AS d
    JOIN routing.edges AS e ON e.id = d.edge
    JOIN trails.trails AS t ON t.trail_id = e.trail_id
    ORDER BY d.seq;
END
$$;
COMMENT ON FUNCTION routing.find_route(integer, integer) IS 'pgr_dijkstra over routing.edges';

-- Overloaded pair: trails near a point, or near a lon/lat typed into the search box.
CREATE FUNCTION trails.nearby_trails(origin geometry, radius_m double precision)
RETURNS SETOF trails.trails
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT t.* FROM trails.trails AS t
    WHERE ST_DWithin(t.geom::geography, origin::geography, radius_m)
    ORDER BY t.geom <-> origin;
END
$$;

CREATE FUNCTION trails.nearby_trails(lon double precision, lat double precision,
                                     radius_m double precision DEFAULT 5000)
RETURNS SETOF trails.trails
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT * FROM trails.nearby_trails(ST_SetSRID(ST_MakePoint(lon, lat), 4326), radius_m);
END
$$;

-- ---------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------
CREATE VIEW trails.open_trails AS
SELECT t.trail_id, r.name AS region, t.name, t.difficulty,
       round((t.length_m / 1000)::numeric, 1) AS length_km, t.geom
FROM trails.trails AS t
JOIN trails.regions AS r USING (region_id)
WHERE t.is_open;

CREATE VIEW routing.dead_ends AS
SELECT v.id, v.geom
FROM routing.vertices AS v
WHERE (SELECT count(*) FROM routing.edges AS e WHERE v.id IN (e.source, e.target)) = 1;

-- The region overview page reads this; refreshed nightly.
CREATE MATERIALIZED VIEW trails.region_stats AS
SELECT r.region_id, r.name, t.difficulty, count(t.trail_id) AS trails,
       coalesce(sum(t.length_m), 0) / 1000 AS total_km
FROM trails.regions AS r
LEFT JOIN trails.trails AS t USING (region_id)
GROUP BY r.region_id, r.name, t.difficulty
WITH NO DATA;
CREATE UNIQUE INDEX region_stats_key ON trails.region_stats (region_id, difficulty);

-- ---------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA trails, routing TO trails_app, trails_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA trails, routing TO trails_readonly;
GRANT SELECT, INSERT, UPDATE ON trails.trails, trails.condition_reports TO trails_app;
GRANT USAGE ON SEQUENCE trails.report_no_seq TO trails_app;
GRANT EXECUTE ON FUNCTION routing.find_route(integer, integer) TO trails_app;

-- ---------------------------------------------------------------------------------------
-- A few rows: one valley, three trails meeting at junctions 1-2-3
-- ---------------------------------------------------------------------------------------
INSERT INTO trails.regions (name) VALUES ('Lauter Valley');
INSERT INTO trails.trailheads (region_id, name, elevation, parking_spaces, location)
VALUES (1, 'Mill Bridge', 640, 40, 'SRID=4326;POINT(9.100 48.500)');
INSERT INTO trails.trails (region_id, trailhead_id, name, difficulty, elevation_gain, geom)
VALUES (1, 1, 'Mill Path', 'easy', 40, 'SRID=4326;LINESTRING(9.100 48.500, 9.110 48.505)'),
       (1, 1, 'Ridge Climb', 'hard', 310, 'SRID=4326;LINESTRING(9.110 48.505, 9.125 48.515)'),
       (1, NULL, 'Valley Loop', 'moderate', 90, 'SRID=4326;LINESTRING(9.100 48.500, 9.125 48.515)');
INSERT INTO routing.vertices (id, geom)
VALUES (1, 'SRID=4326;POINT(9.100 48.500)'), (2, 'SRID=4326;POINT(9.110 48.505)'),
       (3, 'SRID=4326;POINT(9.125 48.515)');
INSERT INTO routing.edges (trail_id, source, target, cost, reverse_cost, geom)
SELECT t.trail_id, s, e, c, c, t.geom
FROM (VALUES ('Mill Path', 1, 2, 12.0), ('Ridge Climb', 2, 3, 35.0), ('Valley Loop', 1, 3, 40.0))
     AS v (name, s, e, c)
JOIN trails.trails AS t USING (name);
REFRESH MATERIALIZED VIEW trails.region_stats;
