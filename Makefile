# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv if it is
# missing and install the project into it (pinned versions from pyproject.toml).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hazwatch-installed
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup kafka demo test test-fast clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

## The Apache Kafka broker's jars (pinned in hazwatch/apache_kafka/pom.xml), fetched once with
## Maven into .cache/kafka. Needs Java 17 and Maven; the tests run their Kafka from these jars.
kafka: setup
	$(PY) -m hazwatch.apache_kafka fetch

## Run the whole pipeline on the embedded stack with the example configuration.
demo: setup
	$(VENV)/bin/hazwatch demo $(DEMO_ARGS)

## All tests: unit tests, then end-to-end tests on real brokers and worker processes.
test: setup kafka
	$(PY) -m pytest --durations=50 $(PYTEST_ARGS)

## Only the fast tests (no brokers).
test-fast: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .cache
