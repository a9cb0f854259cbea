"""`python -m bench`: see bench/run.py and docs/benchmarking.md."""

from bench.run import main

raise SystemExit(main())
