-- pg-schema-sync demo: what someone did straight on production, bypassing the repository.
-- A landslide closed the Valley Loop; routes were still sent over it, so an on-call engineer
-- hot-fixed routing.find_route to skip closed trails and added a column saying why one is closed.

SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION routing.find_route(source integer, target integer)
RETURNS TABLE (seq integer, edge_id bigint, trail_name text, minutes double precision,
               geom geometry)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT d.seq, e.id, t.name, d.cost, e.geom
    FROM pgr_dijkstra(
            'SELECT e.id, e.source, e.target, e.cost, e.reverse_cost
             FROM routing.edges AS e
             JOIN trails.trails AS t USING (trail_id)
             WHERE t.is_open',  -- HOTFIX: never route over closed trails
            find_route.source, find_route.target, directed => true) AS d
    JOIN routing.edges AS e ON e.id = d.edge
    JOIN trails.trails AS t ON t.trail_id = e.trail_id
    ORDER BY d.seq;
END
$$;

ALTER TABLE trails.trails ADD COLUMN closed_reason text;

UPDATE trails.trails SET is_open = false, closed_reason = 'landslide at km 1.2'
WHERE name = 'Valley Loop';
