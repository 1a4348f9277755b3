"""Producer registry: each producer's organisation, clearance, default label and owned mRID range.

Configured through ``HUB_PRODUCERS``, a JSON object such as::

    {"ngt-eq": {"org": "ngt", "clearance": "OFFICIAL", "default_label": "org=ngt|org=neso", "owns": "ngt-",
                "declassify": false}}

Only configured producers may publish: a topic or an HTTP request naming any other producer is refused
(:meth:`ProducerRegistry.get` raises), however the topic came to exist. ``declassify`` (default false)
lets the producer change a label so that more callers may see the object (see :mod:`hub.write_policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from hub.labels import Authorizations, Label, LabelError, Token, canonical, parse
from hub.settings import Settings, get_settings
from hub.write_policy import WriteRights, may_assign

# A caller acts for producer ``<id>`` (publishes over HTTP, answers its consumers' quality flags) when it
# holds the role ``producer:<id>``.
PRODUCER_ROLE = "producer:"


def producer_role(producer_id: str) -> str:
    """The role a caller needs to act as ``producer_id``."""
    return PRODUCER_ROLE + producer_id


_KNOWN_KEYS = frozenset({"org", "clearance", "default_label", "owns", "declassify"})


class ProducerConfigError(ValueError):
    """A ``producers`` settings entry that cannot be used; the message names the producer and key."""


@dataclass(frozen=True)
class Producer:
    id: str
    org: str
    clearance: str
    default_label: Label
    owns: str | None
    configured: bool
    declassify: bool = False

    # Cached: the worker asks for them once per event, and building them parses the clearance.
    @cached_property
    def authorizations(self) -> Authorizations:
        """What the producer itself holds: its clearance and ``org=<org>``."""
        return Authorizations(self.clearance, frozenset({f"org={self.org}"}))

    @cached_property
    def rights(self) -> WriteRights:
        """What the producer may write (:mod:`hub.write_policy`)."""
        return WriteRights(self.authorizations, self.declassify)

    @property
    def default_label_text(self) -> str:
        return canonical(self.default_label)

    def may_own(self, mrid: str) -> bool:
        """Whether the mRID lies in the producer's configured range (any mRID when none is configured)."""
        return self.owns is None or mrid.startswith(self.owns)


class ProducerRegistry:
    def __init__(self, config: Mapping[str, Mapping[str, object]]) -> None:
        self._producers = {pid: _build(pid, entry) for pid, entry in config.items()}

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ProducerRegistry:
        return cls((settings or get_settings()).producers)

    def get(self, producer_id: str) -> Producer:
        """The configured producer; :class:`ProducerConfigError` naming the id for any other (an id nobody
        configured is never invented: that made every topic and every ``org`` claim a producer)."""
        found = self._producers.get(producer_id)
        if found is not None:
            return found
        raise ProducerConfigError(
            f"producer {producer_id!r} is not configured (HUB_PRODUCERS names {self.ids() or 'none'})"
        )

    def __contains__(self, producer_id: object) -> bool:
        return producer_id in self._producers

    def ids(self) -> list[str]:
        return sorted(self._producers)

    def default_label(self, producer_id: str) -> Label:
        return self.get(producer_id).default_label

    def authorizations(self, producer_id: str) -> Authorizations:
        return self.get(producer_id).authorizations


def _build(pid: str, entry: Mapping[str, object]) -> Producer:
    if not isinstance(entry, Mapping):
        raise ProducerConfigError(f"producers[{pid!r}] must be an object, got {entry!r}")
    unknown = set(entry) - _KNOWN_KEYS
    if unknown:
        raise ProducerConfigError(
            f"producers[{pid!r}] has unknown key(s) {sorted(unknown)}; allowed: {sorted(_KNOWN_KEYS)}"
        )
    org = entry.get("org", pid)
    if not isinstance(org, str) or not org:
        raise ProducerConfigError(f"producers[{pid!r}].org must be a non-empty string, got {org!r}")
    clearance_raw = entry.get("clearance", "PUBLIC")
    try:
        clearance = Authorizations(str(clearance_raw)).classification or "PUBLIC"
    except ValueError as exc:
        raise ProducerConfigError(f"producers[{pid!r}].clearance: {exc}") from None
    raw_label = entry.get("default_label")
    if raw_label is None:
        default: Label = Token(f"org={org}")
    else:
        try:
            default = parse(str(raw_label))
        except LabelError as exc:
            raise ProducerConfigError(f"producers[{pid!r}].default_label = {raw_label!r}: {exc}") from None
    owns = entry.get("owns")
    if owns is not None and (not isinstance(owns, str) or not owns):
        raise ProducerConfigError(f"producers[{pid!r}].owns must be a non-empty string, got {owns!r}")
    declassify = entry.get("declassify", False)
    if not isinstance(declassify, bool):
        raise ProducerConfigError(f"producers[{pid!r}].declassify must be true or false, got {declassify!r}")
    producer = Producer(pid, org, clearance, default, owns, configured=True, declassify=declassify)
    if not may_assign(producer.authorizations, default):
        raise ProducerConfigError(
            f"producers[{pid!r}].default_label = {canonical(default)!r} is not satisfied by the producer "
            f"itself (org={org}, clearance={clearance})"
        )
    return producer
