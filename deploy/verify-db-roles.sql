-- Roles are cluster-wide: the verify server needs the roles the schema files name (owners and
-- grantees), or installing them fails. pg-schema-sync reports missing roles, it never creates
-- them. List your production roles here (docker-compose.yml mounts this file into verify-db's
-- /docker-entrypoint-initdb.d/, run once when its data folder is created).
CREATE ROLE trails_app NOLOGIN;
CREATE ROLE trails_readonly NOLOGIN;
