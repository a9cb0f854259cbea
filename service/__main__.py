"""`python -m service` is the `pg-schema-sync` command."""

from service.cli import main

raise SystemExit(main())
