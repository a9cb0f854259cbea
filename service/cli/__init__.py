"""The `pg-schema-sync` commands: one module per group, `common` holds what they share."""
