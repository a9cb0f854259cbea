"""`python -m service` is the `pg-schema-sync` command."""

from service.cli.main import main

raise SystemExit(main())
