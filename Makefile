# Thin aliases for ./dev, which also works where make is not installed.
.PHONY: setup demo test lint docs conformance bench
setup demo test lint docs conformance bench:
	./dev $@
