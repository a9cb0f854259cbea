"""Reading production: connection info, read-only sessions, the pg_dump export and its
normalisation, catalog queries -> inventory, and the snapshot that ties them together."""
