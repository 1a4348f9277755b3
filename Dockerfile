# The hub's Python services (worker, API, CLI) for docker-compose.yml; Kafka and Neo4j come from their
# official images there, so no Java is needed here.

# The planners' page, built from the exact packages of frontend/package-lock.json.
FROM node:20-slim AS page
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HUB_STATE_DIR=/var/lib/hub

WORKDIR /opt/hub
# Every dependency pinned and hashed by the runtime lock, in a layer of its own that the hub's code
# changes do not invalidate; then the hub itself, with the page inside its wheel.
COPY requirements/runtime.lock requirements/runtime.lock
RUN pip install --require-hashes -r requirements/runtime.lock
COPY . .
COPY --from=page /src/frontend/dist frontend/dist
RUN pip install --no-deps . && rm -rf /opt/hub \
    && mkdir -p /var/lib/hub && useradd --system --home /var/lib/hub hub && chown hub /var/lib/hub
WORKDIR /var/lib/hub
USER hub

EXPOSE 8000 6066 9108
CMD ["hub", "--help"]
