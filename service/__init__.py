"""pg-schema-sync: keep PostgreSQL schema files in a repository identical to production."""

__version__ = "0.1.0"
