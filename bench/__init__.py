"""The benchmark: generated schemas of scale S, timed against bare pg_dump and migra."""
