# Thin aliases for ./dev, which also works where make is not installed.
.PHONY: setup demo test lint conformance bench
setup demo test lint conformance bench:
	./dev $@
