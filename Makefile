# The two commands: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
PY := .venv/bin/python
# pytest's worker processes (pytest-xdist): the boot tests mostly wait, so more workers than
# cores. Each gets whole files, in the order tests/conftest.py sorts them in.
PYTEST_WORKERS ?= 4

LINTS := lint-ruff lint-mypy lint-terraform-fmt lint-terraform-validate lint-shellcheck lint-actionlint

.PHONY: test demo demo-stop prepare lint $(LINTS) pytest

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

# Each lint step is a target of its own; .pre-commit-config.yaml runs the same targets as
# its hooks (tests/test_lint_config.py holds the two together).
lint: $(LINTS) ## ruff, mypy, terraform fmt and validate, shellcheck, actionlint

lint-ruff:
	$(PY) -m ruff check app tools testkit tests

lint-mypy:
	$(PY) -m mypy

lint-terraform-fmt: ## every .tf and .tfvars, through tools/terraform.py (works offline)
	$(PY) tools/terraform.py fmt -check -recursive -diff

lint-terraform-validate: ## the root module, modules/*, examples/* (stand-in provider)
	$(PY) tools/validate_modules.py

lint-shellcheck: ## the shell scripts we run (the rendered instance scripts: tools/lint_templates.py)
	shellcheck tools/prepare.sh tools/prepare/*.sh .ci/run

lint-actionlint: ## .github/workflows (shellcheck runs on their run: steps too)
	.venv/bin/actionlint

pytest:
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
