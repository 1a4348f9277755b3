"""Adding a producer in one step: its Kafka principal and password, its topic, its ACLs and its configuration.

``hub producers add ID --org ORG ...`` (and the demo, for its own producers) calls :func:`add_producer`,
which, acting as the admin principal:

1. keeps a password for ``producer-<ID>`` in the state folder (owner-only file; made once);
2. stores it on the broker as a SCRAM-SHA-512 user;
3. creates the topic ``<prefix><ID>`` and the producer's dead-letter topic ``<HUB_DEADLETTER_TOPIC>.<ID>``
   (the producer itself may not create topics);
4. allows ``producer-<ID>`` to write its topic and to read its dead letters, and nothing else;
5. writes the producer's entry (organisation, clearance, default label, owned mRIDs) into the producers
   file that :class:`hub.settings.Settings` merges into ``producers``, so processes started afterwards
   know it.

Every step is idempotent: adding a producer again re-applies the same state (the password is kept).

It lives in ``ingest`` (not the core) because a producer is onboarded to ingest: its topic is named by
the producer client's rule (:func:`ingest.producer.topic_for`), and only the command and the demo call it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hub import audit
from hub.kafka_access import admin_client, grant, producer_grants, set_scram_user
from hub.kafka_clients import credentials_file, ensure_credentials, producer_principal, secured
from hub.kafka_topics import ensure_topics
from hub.producers import ProducerRegistry
from hub.settings import Settings


@dataclass(frozen=True)
class AddedProducer:
    producer_id: str
    principal: str
    topic: str
    deadletter_topic: str
    credentials_file: Path
    producers_file: Path


def producers_file(settings: Settings) -> Path:
    return settings.producers_file or settings.state_dir / "producers.json"


def _store_entry(settings: Settings, producer_id: str, entry: dict[str, str]) -> Path:
    # Checked like HUB_PRODUCERS before anything is written: a bad entry would stop every process that
    # reads it.
    ProducerRegistry({producer_id: entry})
    path = producers_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, object] = json.loads(path.read_text()) if path.is_file() else {}
    current[producer_id] = entry
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


async def add_producer(
    settings: Settings,
    producer_id: str,
    *,
    org: str | None = None,
    clearance: str | None = None,
    default_label: str | None = None,
    owns: str | None = None,
) -> AddedProducer:
    from ingest.producer import PRODUCER_ID, topic_for

    if not PRODUCER_ID.match(producer_id):
        raise ValueError(
            f"producer id {producer_id!r} must be lower-case letters, digits, '-' or '_' (it names the topic)"
        )
    entry = {
        key: value
        for key, value in (
            ("org", org or producer_id),
            ("clearance", clearance),
            ("default_label", default_label),
            ("owns", owns),
        )
        if value is not None
    }
    principal = producer_principal(producer_id)
    topic = topic_for(producer_id, settings)
    letters = settings.producer_deadletter_topic(producer_id)
    creds = ensure_credentials(settings, principal)
    admin = await admin_client(settings)
    try:
        if secured(settings):
            await set_scram_user(admin, creds.username, creds.password)
        await ensure_topics(admin, [topic, letters], settings.topic_partitions)
        if secured(settings):
            await grant(admin, producer_grants(settings, producer_id))
    finally:
        await admin.close()
    path = _store_entry(settings, producer_id, entry)
    audit.record(
        "producer.added",
        subject=principal,
        reason=f"producer {producer_id!r} may write topic {topic!r} and read {letters!r} only",
        producer=producer_id,
        topic=topic,
        deadletter_topic=letters,
        org=entry["org"],
    )
    return AddedProducer(producer_id, principal, topic, letters, credentials_file(settings, principal), path)
