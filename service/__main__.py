"""`python -m service` is the `pg-schema-sync` command."""

from service.cli.main import run

run()
