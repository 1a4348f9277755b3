# The hub's Python services (worker, API, CLI) for docker-compose.yml; Kafka and Neo4j come from their
# official images there, so no Java is needed here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HUB_STATE_DIR=/var/lib/hub

WORKDIR /opt/hub
COPY pyproject.toml README.md ./
COPY ontology ./ontology
COPY hub ./hub
COPY ingest ./ingest
COPY graphql ./graphql
# The compose stack's one-shot Kafka set-up (`hub services kafka-compose`) and the `hub` command.
COPY devstack ./devstack
COPY hubcli ./hubcli
COPY frontend ./frontend
RUN pip install . && mkdir -p /var/lib/hub && useradd --system --home /var/lib/hub hub && chown hub /var/lib/hub
USER hub

EXPOSE 8000 6066 9108
CMD ["hub", "--help"]
