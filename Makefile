# The two commands: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: test demo demo-stop prepare lint pytest

test: ## prepare the machine, lint, and run every test
	bash tools/prepare.sh test
	$(MAKE) lint
	$(MAKE) pytest

demo: ## run the instance's stack locally on real vLLM (CPU)
	bash tools/prepare.sh demo
	$(PY) tools/demo.py

demo-stop: ## stop what `make demo` started
	$(PY) tools/demo.py --stop

prepare:
	bash tools/prepare.sh test

lint:
	$(PY) -m ruff check app tools testkit tests
	$(PY) -m mypy

pytest:
	$(PY) -m pytest
