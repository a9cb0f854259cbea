"""`python -m bench`: see bench/run.py and README, *Benchmark*."""

from bench.run import main

raise SystemExit(main())
