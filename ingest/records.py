"""From a Kafka record to an event the writer can apply, or to the reason it goes to the dead-letter topic.

Checks, in order: the topic's producer is configured (nobody else may publish, whoever created the
topic), size, envelope and ontology (``hub.validation``), the topic's producer against the event's
``source``, the message key against the subject (ordering relies on the key), the producer's mRID range,
the rights of the HTTP caller the event was published for (``Hub-Writer-*`` headers, see
:mod:`hub.write_policy`), and the security label: the event's ``label``, else the ``Security-Label``
header, else the producer's default; a producer may not assign a label it does not itself satisfy. The
write check against the object's stored state comes later, in the writer's fold. Label parsing and the
may-assign verdict are cached per (producer, text): distinct labels are few, events are many.

Last, the producer's data contract (:mod:`hub.contracts`), when it has one and ``contracts_enforce`` is on:
the class must be promised, promised attributes within their range and enumeration, a required one never
removed, and an upsert's label no more restrictive than the contract's maximum. The required attributes
of an upsert that creates its object go with the event to the writer's fold, which alone knows whether
it does. A breach is refused with reason class ``contract`` and ``contract-*`` headers naming the
contract, its version and the clause.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from hub.contracts import Breach, ContractBook, CreateTerms
from hub.events import normalise_mrid
from hub.graph_schema import X, Y
from hub.labels import LabelError, canonical, label_id, parse
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.settings import Settings
from hub.validation import EventRejected, validate_event
from hub.write_policy import (
    AUTHORIZATIONS_HEADER,
    DECLASSIFY_HEADER,
    SUBJECT_HEADER,
    WriteRights,
    decode_rights,
    may_assign,
)
from hub.writer import Accepted

LABEL_HEADER: Final = "Security-Label"
_LABEL_HEADER_LOWER: Final = LABEL_HEADER.lower()

# Property keys that give an object's position, most specific first: (x key, y key).
POINT_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("longitude", "latitude"),
    ("xPosition", "yPosition"),
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record goes to the dead-letter topic: ``reason`` names the field and value;
    ``reason_class`` is a short word from a closed set, for metrics and for consumers that triage."""

    reason: str
    reason_class: str
    # Further dead-letter headers (the contract's id, version and clause for a contract breach).
    headers: tuple[tuple[str, bytes], ...] = ()


def breach_rejection(breach: Breach) -> Rejection:
    """The rejection of an event that breaks its producer's contract."""
    return Rejection(breach.reason, "contract", breach.headers)


def producer_of(topic: str, prefix: str) -> str | None:
    """The producer id a topic belongs to (``cim.ingest.<producer>``), None for a foreign topic."""
    if not topic.startswith(prefix) or len(topic) == len(prefix):
        return None
    return topic[len(prefix) :]


_AUTHORIZATIONS_LOWER: Final = AUTHORIZATIONS_HEADER.lower()
_DECLASSIFY_LOWER: Final = DECLASSIFY_HEADER.lower()
_SUBJECT_LOWER: Final = SUBJECT_HEADER.lower()


def header_values(headers: Any, name_lower: str) -> list[bytes]:
    """Every value of a header (Kafka allows repeats), case-insensitively."""
    if not headers:
        return []
    items: Iterable[tuple[str, Any]] = headers.items() if hasattr(headers, "items") else headers
    return [
        value if isinstance(value, bytes) else str(value).encode()
        for key, value in items
        if key.lower() == name_lower and value is not None
    ]


def header_value(headers: Any, name_lower: str) -> bytes | None:
    """A header's value from faust/aiokafka headers (a mapping or a list of pairs), case-insensitively."""
    if not headers:
        return None
    items: Iterable[tuple[str, Any]] = headers.items() if hasattr(headers, "items") else headers
    for key, value in items:
        if key.lower() == name_lower:
            return value if isinstance(value, bytes) or value is None else str(value).encode()
    return None


class RecordChecker:
    """Turns records into :class:`Accepted` events or :class:`Rejection` s; never raises for bad input."""

    def __init__(
        self,
        ontology: Any,
        settings: Settings,
        registry: ProducerRegistry | None = None,
        contracts: ContractBook | None = None,
    ) -> None:
        self.ontology = ontology
        self.prefix = settings.ingest_topic_prefix
        self.max_bytes = settings.max_event_bytes
        self.registry = registry or ProducerRegistry.from_settings(settings)
        if contracts is None and settings.contracts_enforce and settings.contracts_dir is not None:
            # A folder that does not lint stops the worker here, naming every problem: enforcing part of
            # a contract, or none, would pass events the operator meant to refuse.
            contracts = ContractBook.from_folder(settings.contracts_dir, ontology, self.registry)
        self.contracts = contracts if settings.contracts_enforce else None
        # (producer, label text or None for the default) -> (id, canonical) or the rejection.
        self._labels: dict[tuple[str, str | None], tuple[int, str] | Rejection] = {}
        # Decoded Hub-Writer-* header values (one per caller, in practice).
        self._rights: dict[tuple[bytes, bytes | None], WriteRights | Rejection] = {}

    def check(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any, ref: Any = None
    ) -> Accepted | Rejection:
        try:
            return self._check(topic, key, value, headers, ref)
        except Exception as exc:  # a bug here must not stop ingest; the record is kept in the dead letters
            return Rejection(
                f"internal error while checking the event: {type(exc).__name__}: {exc}", "internal"
            )

    def _check(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any, ref: Any
    ) -> Accepted | Rejection:
        producer = producer_of(topic, self.prefix)
        if producer is None:
            return Rejection(f"topic {topic!r} is not an ingest topic (prefix {self.prefix!r})", "source")
        try:
            prod = self.registry.get(producer)
        except ProducerConfigError as exc:
            return Rejection(f"source: topic {topic!r}: {exc}", "source")
        if value is None:
            return Rejection("value: the message has no value (tombstone records are not events)", "json")
        if len(value) > self.max_bytes:
            return Rejection(
                f"size: event of {len(value)} bytes exceeds max_event_bytes={self.max_bytes}", "size"
            )
        try:
            valid = validate_event(value, self.ontology, max_bytes=self.max_bytes)
        except EventRejected as exc:
            return Rejection(str(exc), _reason_class(exc))
        event = valid.event
        if event.source != producer:
            return Rejection(
                f"source: event source {event.source!r} does not match the topic's producer {producer!r} "
                f"(topic {topic!r})",
                "source",
            )
        mrid = valid.mrid
        # Kafka keeps order per partition, and the key picks the partition: only events keyed by their
        # subject reach the writer in their object's order. One without a key lands anywhere.
        key_problem: str | None = None
        if key is None:
            key_problem = f"key: the message has no key; it must be the event's subject {event.subject!r}"
        else:
            try:
                key_text = key.decode()
            except UnicodeDecodeError:
                key_problem = f"key: message key {_shown(key)} is not UTF-8"
            else:
                if normalise_mrid(key_text) != mrid:
                    key_problem = (
                        f"key: message key {_shown(key_text)} is not the event's subject {event.subject!r}"
                    )
        if key_problem is not None:
            return Rejection(key_problem, "key")
        if not prod.may_own(mrid):
            return Rejection(
                f"ownership: producer {producer!r} may only write mRIDs starting {prod.owns!r}, "
                f"got subject {mrid!r}",
                "ownership",
            )
        raw_headers = getattr(ref, "headers", None) if headers is None else headers
        rights: tuple[WriteRights, ...] = (prod.rights,)
        on_behalf_of: str | None = None
        carried = header_values(raw_headers, _AUTHORIZATIONS_LOWER)
        if carried or header_values(raw_headers, _DECLASSIFY_LOWER):
            if not carried:
                return Rejection(
                    f"rights: header {DECLASSIFY_HEADER} without {AUTHORIZATIONS_HEADER}", "rights"
                )
            declassify = header_value(raw_headers, _DECLASSIFY_LOWER)
            # Every such header narrows the write further; none can widen the producer's rights.
            for value in carried:
                found = self._caller_rights(value, declassify)
                if isinstance(found, Rejection):
                    return found
                rights = (*rights, found)
            subject = header_value(raw_headers, _SUBJECT_LOWER)
            on_behalf_of = subject.decode(errors="replace") if subject is not None else None
        kind = event.type.value
        lid: int | None = None
        ltext: str | None = None
        if kind == "upsert":
            text = event.label
            if text is None:
                raw = header_value(raw_headers, _LABEL_HEADER_LOWER)
                if raw is not None:
                    try:
                        text = raw.decode()
                    except UnicodeDecodeError:
                        return Rejection(f"label: header {LABEL_HEADER} value {raw!r} is not UTF-8", "label")
            verdict = self._label(prod.id, text)
            if isinstance(verdict, Rejection):
                return verdict
            lid, ltext = verdict
        props = valid.properties
        on_create: CreateTerms | None = None
        enforcer = self.contracts.enforcer(producer) if self.contracts is not None else None
        if enforcer is not None:
            rules = enforcer.rules(valid.class_name)
            if isinstance(rules, Breach):
                return breach_rejection(rules)
            breach = rules.check(props)
            if breach is None and lid is not None and ltext is not None:
                breach = enforcer.label(lid, ltext)
            if breach is not None:
                return breach_rejection(breach)
            if kind == "upsert":
                on_create = rules.on_create
        for xk, yk in POINT_KEYS:
            if xk in props or yk in props:
                x, y = _number(props.get(xk)), _number(props.get(yk))
                if x is not None and y is not None:
                    props = {**props, X: x, Y: y}
                break
        return Accepted(
            mrid=mrid,
            kind=kind,
            version=event.version,
            cls=valid.class_name,
            props=props,
            rels={rt: (valid.associations[rt].target, ts) for rt, ts in valid.relationships.items()},
            label_id=lid,
            label_text=ltext,
            producer=producer,
            event_id=event.id,
            event_time=event.time,
            ref=ref,
            rights=rights,
            on_behalf_of=on_behalf_of,
            on_create=on_create,
            scenario=event.scenario,
        )

    def _caller_rights(self, value: bytes, declassify: bytes | None) -> WriteRights | Rejection:
        key = (value, declassify)
        found = self._rights.get(key)
        if found is None:
            try:
                found = decode_rights(value, declassify)
            except ValueError as exc:
                found = Rejection(f"rights: {exc}", "rights")
            if len(self._rights) < 10_000:
                self._rights[key] = found
        return found

    def _label(self, producer: str, text: str | None) -> tuple[int, str] | Rejection:
        cache_key = (producer, text)
        found = self._labels.get(cache_key)
        if found is not None:
            return found
        prod = self.registry.get(producer)
        verdict: tuple[int, str] | Rejection
        if text is None:
            canon = prod.default_label_text
            verdict = (label_id(canon), canon)
        else:
            try:
                tree = parse(text)
            except LabelError as exc:
                verdict = Rejection(f"label: {text!r} is not a valid label: {exc}", "label")
            else:
                canon = canonical(tree)
                if may_assign(prod.authorizations, tree):
                    verdict = (label_id(canon), canon)
                else:
                    verdict = Rejection(
                        f"label: producer {producer!r} (org={prod.org}, clearance={prod.clearance}) may not "
                        f"assign label {canon!r}, which it does not itself satisfy",
                        "label",
                    )
        if len(self._labels) < 100_000:
            self._labels[cache_key] = verdict
        return verdict


def _shown(value: object, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: a key may be as long as the broker allows."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: object) -> float | None:
    """A coordinate as float; CGMES writes positions as strings, which may hold anything."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None


def _reason_class(exc: EventRejected) -> str:
    """A closed set of words for metrics, from where the validator found the problem."""
    field = exc.field or ""
    reason = exc.reason
    if field.startswith("attributes."):
        return "attribute"
    if field.startswith("references."):
        return "reference"
    if field == "class":
        return "class"
    if field:
        return "envelope"
    if "larger than" in reason:
        return "size"
    if "JSON" in reason or "UTF-8" in reason:
        return "json"
    return "envelope" if "envelope" in reason else "invalid"
