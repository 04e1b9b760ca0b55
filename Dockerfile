# syntax=docker/dockerfile:1
# One image for every hazwatch service: the container runs `hazwatch <command> [options]`,
# e.g. `docker run --rm hazwatch check-config /etc/hazwatch`. docker-compose.yml starts
# ingest, rules and alerts from it; tests/deploy/test_compose.py checks the two agree.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/var/cache/hazwatch/numba \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install from the copied source. Versions are the pins in pyproject.toml; psycopg2 is the
# PostgreSQL driver of the audit store (HAZWATCH_DATABASE_URL=postgresql+psycopg2://...), which
# pyproject only lists for the tests, so it is added here with the same pin.
# Only the packages pyproject.toml ships are copied (a test checks the list), not .venv or .git.
WORKDIR /src
COPY pyproject.toml ./
COPY hazwatch/ hazwatch/
COPY config/ config/
COPY formats/ formats/
COPY sensors/ sensors/
COPY ingest/ ingest/
COPY rules/ rules/
COPY alerts/ alerts/
COPY console/ console/
COPY history/ history/
# The rule engine's compiled loops (numba) are compiled here, once, into NUMBA_CACHE_DIR, so a
# worker starts without the ~4 s compilation.
RUN pip install . "psycopg2-binary==2.9.11" \
    && python -c "from config.loader import load_config; from rules.engine import Engine; \
Engine(load_config('/src/config/example'), started_ms=0).warm_up()" \
    && chmod -R a+rwX /var/cache/hazwatch \
    && rm -rf /src

# Services run as an unprivileged user. /var/lib/hazwatch is its working directory and holds the
# rules worker's data (HAZWATCH_DATA_DIR); a named volume mounted there takes its ownership.
RUN groupadd --system --gid 10001 hazwatch \
    && useradd --system --uid 10001 --gid hazwatch --home-dir /var/lib/hazwatch \
       --shell /usr/sbin/nologin hazwatch \
    && mkdir -p /var/lib/hazwatch/data /run/hazwatch \
    && chown -R hazwatch:hazwatch /var/lib/hazwatch /run/hazwatch

# The example configuration, so the image starts on its own. A deployment mounts its own
# directory over it (docker-compose.yml does); owned by root, so the services cannot change it.
COPY config/example/ /etc/hazwatch/

ENV HAZWATCH_DATA_DIR=/var/lib/hazwatch/data
WORKDIR /var/lib/hazwatch
USER 10001:10001

ENTRYPOINT ["hazwatch"]
CMD ["--help"]
