"""Data contracts: what each producer promises about its stream, in the Open Data Contract Standard (v3).

One YAML file per producer stream in the operator's folder (``settings.contracts_dir``), read with Bitol's
pydantic model of ODCS (``open_data_contract_standard``). The standard's own fields say who owns the
stream (``team``), how to reach them (``support``), why it exists and what it is not fit for
(``description.purpose`` / ``.limitations``), what it publishes (``schema``: one object per ontology class,
its ``properties`` the attributes promised, under the CIM qualified names events use) and how often and
how fresh (``slaProperties`` ``frequency`` and ``latency``). What the standard has no field for is in
``customProperties``:

* ``producer``: the producer id (``HUB_PRODUCERS``) whose topic the contract governs;
* ``defaultLabel`` and ``maximumLabel``: the label of an event that names none (the producer's configured
  default) and the most restrictive label any object of the stream may carry;
* ``metadataLabel``: who may see that the product exists (default ``classification=PUBLIC``);
* ``licence``: the licence's URL; ``sensitivity``: Open Energy's class (``OE-O`` open, ``OE-SA`` / ``OE-SB``
  / ``OE-SP`` shared under conditions, ``OE-C`` closed).

Semantics the worker enforces per event (:class:`ContractBook`): an event's class must be a promised class
or a subclass of one (every matching object's promises then apply); a promised attribute the event carries
must fit its range (``logicalTypeOptions`` ``minimum`` / ``maximum`` / ``exclusiveMinimum`` /
``exclusiveMaximum``) and enumeration (``enum``); a ``required`` attribute may never be removed and must be
present on the upsert that creates the object (checked in the writer's fold, the one place that knows);
an upsert's label must be no more restrictive than ``maximumLabel`` (everyone who satisfies the maximum
satisfies it). Attributes a contract does not name are allowed: the ontology already bounds them.

:func:`lint` checks contracts against the ontology and the producers' configuration, and
:func:`breaking_changes` a new version against the previous one (removed class or attribute, changed or
tightened type, range or enumeration, required added, maximum label tightened), which only a new major
version may do. Every problem names its file and clause.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import yaml
from open_data_contract_standard.model import OpenDataContractStandard, SchemaProperty
from pydantic import ValidationError

from hub.labels import Authorizations, Label, LabelError, canonical, evaluate, parse
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.write_policy import implies, may_assign
from ontology.model import Attribute, Ontology

API_VERSIONS: Final = frozenset({"v3.0.2", "v3.1.0", "v3.2.0"})
STATUSES: Final = frozenset({"proposed", "draft", "active", "deprecated", "retired"})
SENSITIVITY_CLASSES: Final = ("OE-O", "OE-SA", "OE-SB", "OE-SP", "OE-C")
DEFAULT_METADATA_LABEL: Final = "classification=PUBLIC"
# ODCS units of time (its SLA "periodic table"), in seconds.
_UNITS: Final[dict[str, float]] = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400.0),
    **dict.fromkeys(("y", "yr", "year", "years"), 365 * 86400.0),
}
# Which ODCS logical types fit an ontology datatype.
LOGICAL_TYPES: Final[dict[str, frozenset[str]]] = {
    "float": frozenset({"number"}),
    "int": frozenset({"integer"}),
    "bool": frozenset({"boolean"}),
    "string": frozenset({"string"}),
    "enum": frozenset({"string"}),
    "datetime": frozenset({"timestamp", "date"}),
}
_NUMERIC: Final = frozenset({"number", "integer"})
_BOUNDS: Final = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_SEMVER: Final = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
# Dead-letter headers of an event that breaks its producer's contract.
CONTRACT_ID_HEADER: Final = "contract-id"
CONTRACT_VERSION_HEADER: Final = "contract-version"
CONTRACT_CLAUSE_HEADER: Final = "contract-clause"


class ContractError(ValueError):
    """A contract file that cannot be read as a contract; the message names the file and the clause."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of :func:`lint` or :func:`breaking_changes`."""

    file: str
    clause: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.clause}: {self.message}"


@dataclass(frozen=True, slots=True)
class Duration:
    value: float
    unit: str

    @property
    def seconds(self) -> float:
        return self.value * _UNITS[self.unit]


@dataclass(frozen=True, slots=True)
class AttributePromise:
    """One promised attribute: its qualified name, logical type, whether required, range, enumeration."""

    qname: str
    logical_type: str | None
    required: bool
    bounds: Mapping[str, float]  # minimum / maximum / exclusiveMinimum / exclusiveMaximum -> value
    enum: tuple[str, ...] | None
    clause: str


@dataclass(frozen=True, slots=True)
class ClassPromise:
    name: str
    attributes: Mapping[str, AttributePromise]  # qname -> promise
    clause: str


@dataclass(frozen=True)
class Contract:
    """A parsed contract; ``document`` is the ODCS model it was read into."""

    file: str
    id: str
    version: str
    name: str
    status: str
    producer: str
    owner: str
    contacts: tuple[str, ...]
    purpose: str
    limitations: str
    classes: Mapping[str, ClassPromise]
    default_label: str
    maximum_label: str
    metadata_label: str
    frequency: Duration
    freshness: Duration
    licence: str
    sensitivity: str
    document: OpenDataContractStandard = field(repr=False, compare=False)

    @property
    def major(self) -> int:
        return semver(self.version)[0]

    def metadata_visible(self, auths: Authorizations) -> bool:
        """Whether a caller holding ``auths`` may know the product exists (its ``metadataLabel``); a label
        that does not parse hides it from everyone (lint names it)."""
        try:
            label = parse(self.metadata_label)
        except LabelError:
            return False
        return evaluate(label, auths)


def semver(text: str) -> tuple[int, int, int, str]:
    """(major, minor, patch, pre-release) of a semantic version; ValueError for anything else."""
    found = _SEMVER.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    return int(found[1]), int(found[2]), int(found[3]), found[4] or ""


def _semver_key(text: str) -> tuple[int, int, int, int, str]:
    major, minor, patch, pre = semver(text)
    # A pre-release sorts before its release.
    return major, minor, patch, 0 if pre else 1, pre


# --- reading ----------------------------------------------------------------------------------------


def load_contract(path: Path) -> Contract:
    """Read one contract file; :class:`ContractError` naming the file and clause if it is not one."""
    name = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContractError(f"{name}: cannot be read as YAML: {exc}") from None
    return parse_contract(data, name)


def parse_contract(data: object, name: str) -> Contract:
    """A contract from the YAML document ``data`` of file ``name``."""
    if not isinstance(data, dict):
        raise ContractError(f"{name}: a contract is a YAML mapping, got {type(data).__name__}")
    for key in ("apiVersion", "kind", "id", "version", "status"):
        if key not in data:
            raise ContractError(f"{name}: {key}: missing (ODCS requires it)")
    try:
        doc = OpenDataContractStandard.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise ContractError(f"{name}: {loc}: {first['msg']} (ODCS), got {first.get('input')!r}") from None
    if doc.apiVersion not in API_VERSIONS:
        raise ContractError(f"{name}: apiVersion: {doc.apiVersion!r} is not one of {sorted(API_VERSIONS)}")
    if doc.kind != "DataContract":
        raise ContractError(f"{name}: kind: must be 'DataContract', got {doc.kind!r}")
    if doc.status not in STATUSES:
        raise ContractError(f"{name}: status: {doc.status!r} is not one of {sorted(STATUSES)}")
    version = _text(doc.version, name, "version")
    try:
        semver(version)
    except ValueError as exc:
        raise ContractError(f"{name}: version: {exc}") from None
    custom = _custom(doc.customProperties, name, "customProperties")
    sla = {p.property: p for p in doc.slaProperties or [] if p.property}
    description = doc.description
    owner, contacts = _owner(doc, name)
    classes: dict[str, ClassPromise] = {}
    for i, obj in enumerate(doc.schema_ or []):
        clause = f"schema[{obj.name or i}]"
        cls = _text(obj.name, name, f"schema[{i}].name")
        if cls in classes:
            raise ContractError(f"{name}: {clause}: class {cls!r} is promised twice")
        attrs: dict[str, AttributePromise] = {}
        for j, prop in enumerate(obj.properties or []):
            promise = _attribute(prop, name, f"{clause}.properties[{prop.name or j}]")
            if promise.qname in attrs:
                raise ContractError(
                    f"{name}: {promise.clause}: attribute {promise.qname!r} is promised twice"
                )
            attrs[promise.qname] = promise
        classes[cls] = ClassPromise(cls, attrs, clause)
    if not classes:
        raise ContractError(f"{name}: schema: a contract promises at least one class")
    return Contract(
        file=name,
        id=_text(doc.id, name, "id"),
        version=version,
        name=_text(doc.name, name, "name"),
        status=str(doc.status),
        producer=_text(custom.get("producer"), name, "customProperties.producer"),
        owner=owner,
        contacts=contacts,
        purpose=_text(description.purpose if description else None, name, "description.purpose"),
        limitations=_text(description.limitations if description else None, name, "description.limitations"),
        classes=classes,
        default_label=_text(custom.get("defaultLabel"), name, "customProperties.defaultLabel"),
        maximum_label=_text(custom.get("maximumLabel"), name, "customProperties.maximumLabel"),
        metadata_label=str(custom.get("metadataLabel") or DEFAULT_METADATA_LABEL),
        frequency=_duration(sla.get("frequency"), name, "slaProperties[frequency]"),
        freshness=_duration(sla.get("latency"), name, "slaProperties[latency]"),
        licence=_text(custom.get("licence"), name, "customProperties.licence"),
        sensitivity=_text(custom.get("sensitivity"), name, "customProperties.sensitivity"),
        document=doc,
    )


def _text(value: object, name: str, clause: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"{name}: {clause}: must be a non-empty string, got {value!r}")
    return value


def _custom(props: Iterable[Any] | None, name: str, clause: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for prop in props or []:
        if not prop.property:
            raise ContractError(f"{name}: {clause}: an entry has no 'property'")
        if prop.property in found:
            raise ContractError(f"{name}: {clause}.{prop.property}: given twice")
        found[prop.property] = prop.value
    return found


def _owner(doc: OpenDataContractStandard, name: str) -> tuple[str, tuple[str, ...]]:
    team = doc.team
    members = team if isinstance(team, list) else (team.members or [] if team is not None else [])
    owners = [m.name or m.username for m in members if (m.role or "").lower() == "owner"]
    owner = owners[0] if owners else None
    if not owner and team is not None and not isinstance(team, list):
        owner = team.name
    contacts = tuple(s.url for s in doc.support or [] if s.url)
    if not owner:
        raise ContractError(f"{name}: team: names no owner (a member with role 'owner', or the team's name)")
    if not contacts:
        raise ContractError(f"{name}: support: names no contact (an entry with a 'url', e.g. mailto:)")
    return owner, contacts


def _duration(prop: Any, name: str, clause: str) -> Duration:
    if prop is None:
        raise ContractError(f"{name}: {clause}: missing")
    value, unit = prop.value, (prop.unit or "").lower()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ContractError(f"{name}: {clause}.value: must be a positive number, got {value!r}")
    if unit not in _UNITS:
        raise ContractError(f"{name}: {clause}.unit: {prop.unit!r} is not a unit of time ({sorted(_UNITS)})")
    return Duration(float(value), unit)


def _attribute(prop: SchemaProperty, name: str, clause: str) -> AttributePromise:
    qname = _text(prop.name, name, f"{clause}.name")
    options = prop.logicalTypeOptions or {}
    bounds: dict[str, float] = {}
    for key in _BOUNDS:
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ContractError(
                    f"{name}: {clause}.logicalTypeOptions.{key}: must be a finite number, got {value!r}"
                )
            bounds[key] = float(value)
    enum: tuple[str, ...] | None = None
    if prop.enum is not None:
        values = [e.value for e in prop.enum]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ContractError(f"{name}: {clause}.enum: values must be non-empty strings, got {values!r}")
        enum = tuple(str(v) for v in values)
    return AttributePromise(qname, prop.logicalType, bool(prop.required), bounds, enum, clause)


def load_contracts(directory: Path) -> dict[str, Contract]:
    """Every contract in ``directory`` (``*.yaml``, ``*.yml``), by producer: one per producer stream."""
    if not directory.is_dir():
        raise ContractError(f"{directory}: contracts folder does not exist")
    found: dict[str, Contract] = {}
    ids: dict[str, str] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        contract = load_contract(path)
        if contract.producer in found:
            raise ContractError(
                f"{path}: customProperties.producer: producer {contract.producer!r} already has a contract "
                f"({found[contract.producer].file})"
            )
        if contract.id in ids:
            raise ContractError(f"{path}: id: {contract.id!r} is also the id of {ids[contract.id]}")
        found[contract.producer] = contract
        ids[contract.id] = str(path)
    return found


# --- linting ----------------------------------------------------------------------------------------


def lint(contract: Contract, ontology: Ontology, registry: ProducerRegistry) -> list[Problem]:
    """Whether ``contract`` makes sense against the ontology and its producer's configuration."""
    problems: list[Problem] = []

    def problem(clause: str, message: str) -> None:
        problems.append(Problem(contract.file, clause, message))

    try:
        producer = registry.get(contract.producer)
    except ProducerConfigError as exc:
        problem("customProperties.producer", str(exc))
        producer = None
    labels: dict[str, Label] = {}
    for key, text in (
        ("defaultLabel", contract.default_label),
        ("maximumLabel", contract.maximum_label),
        ("metadataLabel", contract.metadata_label),
    ):
        try:
            labels[key] = parse(text)
        except LabelError as exc:
            problem(f"customProperties.{key}", f"{text!r} is not a valid label: {exc}")
    maximum, default = labels.get("maximumLabel"), labels.get("defaultLabel")
    if maximum is not None and default is not None and not implies(maximum, default):
        problem(
            "customProperties.defaultLabel",
            f"{canonical(default)!r} is more restrictive than maximumLabel {canonical(maximum)!r}",
        )
    if producer is not None:
        if maximum is not None and not may_assign(producer.authorizations, maximum):
            problem(
                "customProperties.maximumLabel",
                f"{canonical(maximum)!r} is beyond producer {producer.id!r}'s clearance "
                f"(org={producer.org}, clearance={producer.clearance}): it could not assign it",
            )
        if default is not None and canonical(default) != producer.default_label_text:
            problem(
                "customProperties.defaultLabel",
                f"{canonical(default)!r} is not producer {producer.id!r}'s configured default label "
                f"{producer.default_label_text!r}",
            )
    if contract.sensitivity not in SENSITIVITY_CLASSES:
        problem(
            "customProperties.sensitivity", f"{contract.sensitivity!r} is not one of {SENSITIVITY_CLASSES}"
        )
    parsed = urlparse(contract.licence)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        problem("customProperties.licence", f"{contract.licence!r} is not an http(s) URL")
    for cls, promise in contract.classes.items():
        if cls not in ontology.classes:
            problem(promise.clause, f"class {cls!r} is not in the ontology")
            continue
        attributes = ontology.attributes_of(cls)
        for qname, attr_promise in promise.attributes.items():
            attr = attributes.get(qname)
            if attr is None:
                problem(attr_promise.clause, f"{qname!r} is not an attribute of {cls} or its superclasses")
                continue
            for clause, message in _fit(attr_promise, attr):
                problem(clause, message)
    return problems


def _fit(promise: AttributePromise, attr: Attribute) -> list[tuple[str, str]]:
    """Whether a promise's type, range and enumeration fit the ontology's attribute."""
    found: list[tuple[str, str]] = []
    allowed = LOGICAL_TYPES[attr.datatype]
    if promise.logical_type is None:
        found.append((f"{promise.clause}.logicalType", f"missing; {attr.qname} is {attr.datatype}"))
    elif promise.logical_type not in allowed:
        found.append(
            (
                f"{promise.clause}.logicalType",
                f"{promise.logical_type!r} does not fit {attr.qname} ({attr.datatype}): "
                f"use {sorted(allowed)}",
            )
        )
    if promise.bounds:
        if attr.datatype not in ("float", "int"):
            found.append(
                (
                    f"{promise.clause}.logicalTypeOptions",
                    f"a numeric range on {attr.qname}, which is {attr.datatype}",
                )
            )
        else:
            low = max(
                (promise.bounds[k] for k in ("minimum", "exclusiveMinimum") if k in promise.bounds),
                default=-math.inf,
            )
            high = min(
                (promise.bounds[k] for k in ("maximum", "exclusiveMaximum") if k in promise.bounds),
                default=math.inf,
            )
            if low > high:
                found.append((f"{promise.clause}.logicalTypeOptions", f"empty range: {low} > {high}"))
    if promise.enum is not None:
        if attr.datatype != "enum":
            found.append(
                (f"{promise.clause}.enum", f"an enumeration on {attr.qname}, which is {attr.datatype}")
            )
        else:
            unknown = [v for v in promise.enum if v not in attr.literals]
            if unknown:
                found.append(
                    (f"{promise.clause}.enum", f"{unknown} are not literals of {attr.enum} ({attr.qname})")
                )
    return found


# --- compatibility ----------------------------------------------------------------------------------


def breaking_changes(old: Contract, new: Contract) -> list[Problem]:
    """What in ``new`` breaks a consumer of ``old``; empty when compatible. A new major version may break."""
    changes: list[Problem] = []

    def breaks(clause: str, message: str) -> None:
        changes.append(Problem(new.file, clause, message))

    for cls, before in old.classes.items():
        after = new.classes.get(cls)
        if after is None:
            breaks(f"schema[{cls}]", f"class {cls!r} was removed (version {old.version} promised it)")
            continue
        for qname, was in before.attributes.items():
            now = after.attributes.get(qname)
            if now is None:
                breaks(f"{before.clause}.properties[{qname}]", f"attribute {qname!r} of {cls} was removed")
                continue
            if was.logical_type != now.logical_type:
                breaks(
                    f"{now.clause}.logicalType",
                    f"type changed from {was.logical_type!r} to {now.logical_type!r}",
                )
            if now.required and not was.required:
                breaks(f"{now.clause}.required", f"{qname} became required")
            for side, tighter in _tightened(was.bounds, now.bounds):
                breaks(f"{now.clause}.logicalTypeOptions.{side}", tighter)
            if now.enum is not None:
                dropped = sorted(set(was.enum) - set(now.enum)) if was.enum is not None else None
                if was.enum is None:
                    breaks(f"{now.clause}.enum", "an enumeration was added")
                elif dropped:
                    breaks(f"{now.clause}.enum", f"values {dropped} are no longer allowed")
        for qname, now in after.attributes.items():
            if qname not in before.attributes and now.required:
                breaks(now.clause, f"{qname} was added as required")
    try:
        old_max, new_max = parse(old.maximum_label), parse(new.maximum_label)
    except LabelError:
        pass  # lint names it
    else:
        if not implies(old_max, new_max):
            breaks(
                "customProperties.maximumLabel",
                f"tightened from {canonical(old_max)!r} to {canonical(new_max)!r}: callers who saw every "
                "object no longer do",
            )
    return changes


Bound = tuple[float, bool]  # (value, exclusive)


def lower_bound(bounds: Mapping[str, float]) -> Bound | None:
    """The effective lower bound of ``minimum`` and ``exclusiveMinimum`` (the tighter of the two)."""
    found = [(bounds[k], k == "exclusiveMinimum") for k in ("minimum", "exclusiveMinimum") if k in bounds]
    return max(found) if found else None


def upper_bound(bounds: Mapping[str, float]) -> Bound | None:
    """The effective upper bound of ``maximum`` and ``exclusiveMaximum`` (the tighter of the two)."""
    found = [(bounds[k], k == "exclusiveMaximum") for k in ("maximum", "exclusiveMaximum") if k in bounds]
    return min(found, key=lambda b: (b[0], not b[1])) if found else None


def _tightened(was: Mapping[str, float], now: Mapping[str, float]) -> list[tuple[str, str]]:
    """Which side of a range ``now`` narrows compared with ``was``: (the option's key, how)."""
    found: list[tuple[str, str]] = []
    for before, after, lower in (
        (lower_bound(was), lower_bound(now), True),
        (upper_bound(was), upper_bound(now), False),
    ):
        if after is None:
            continue
        key = (
            ("exclusiveMinimum" if after[1] else "minimum")
            if lower
            else ("exclusiveMaximum" if after[1] else "maximum")
        )
        if before is None:
            found.append((key, f"a bound {key}={after[0]:g} was added"))
            continue
        moved = after[0] > before[0] if lower else after[0] < before[0]
        if moved or (after[0] == before[0] and after[1] and not before[1]):
            found.append((key, f"tightened from {_show_bound(before, lower)} to {_show_bound(after, lower)}"))
    return found


def _show_bound(bound: Bound, lower: bool) -> str:
    value, exclusive = bound
    return f"{'>' if lower else '<'}{'' if exclusive else '='} {value:g}"


def compare(previous: Mapping[str, Contract], current: Mapping[str, Contract]) -> list[Problem]:
    """Every change from ``previous`` to ``current`` (both by producer) that is not allowed: a breaking
    change without a new major version, a version that goes back, a changed contract under the same
    version, a contract removed or moved to another id."""
    problems: list[Problem] = []
    for producer, old in previous.items():
        new = current.get(producer)
        if new is None:
            problems.append(
                Problem(
                    old.file, "(contract)", f"the contract of producer {producer!r} ({old.id}) was removed"
                )
            )
            continue
        if new.id != old.id:
            problems.append(Problem(new.file, "id", f"changed from {old.id!r} to {new.id!r}"))
        old_key, new_key = _semver_key(old.version), _semver_key(new.version)
        if new_key < old_key:
            problems.append(Problem(new.file, "version", f"{new.version} is older than {old.version}"))
            continue
        if new_key == old_key:
            if _comparable(new.document) != _comparable(old.document):
                problems.append(
                    Problem(
                        new.file, "version", f"the contract changed but its version is still {new.version}"
                    )
                )
            continue
        changes = breaking_changes(old, new)
        if changes and new.major <= old.major:
            problems.extend(
                Problem(
                    c.file,
                    c.clause,
                    f"{c.message}: a breaking change needs a new major version "
                    f"(from {old.version} to {old.major + 1}.0.0), not {new.version}",
                )
                for c in changes
            )
    return problems


def _comparable(doc: OpenDataContractStandard) -> dict[str, Any]:
    return doc.model_dump(exclude_none=True, by_alias=True)


# --- enforcement ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breach:
    """An event that breaks its producer's contract: which contract, which clause, and how."""

    contract_id: str
    version: str
    clause: str
    message: str

    @property
    def reason(self) -> str:
        return f"contract: {self.message} (contract {self.contract_id} {self.version}, clause {self.clause})"

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return (
            (CONTRACT_ID_HEADER, self.contract_id.encode()),
            (CONTRACT_VERSION_HEADER, self.version.encode()),
            (CONTRACT_CLAUSE_HEADER, self.clause.encode()),
        )


@dataclass(frozen=True, slots=True)
class CreateTerms:
    """What the upsert that creates an object must carry: the required attributes (property key, qname,
    clause). Checked in the writer's fold, which alone knows whether an upsert creates its object."""

    contract_id: str
    version: str
    required: tuple[tuple[str, str, str], ...]

    def missing(self, props: Mapping[str, object]) -> Breach | None:
        for key, qname, clause in self.required:
            if props.get(key) is None:
                return Breach(
                    self.contract_id,
                    self.version,
                    f"{clause}.required",
                    f"{qname} is required and missing from the upsert that creates the object",
                )
        return None


@dataclass(frozen=True, slots=True)
class _Check:
    key: str  # ontology property key
    qname: str
    clause: str
    low: float | None
    low_inclusive: bool
    high: float | None
    high_inclusive: bool
    enum: frozenset[str] | None
    required: bool


@dataclass(frozen=True, slots=True)
class ClassRules:
    """A producer's promises for one event class, folded over every promised ancestor once."""

    contract_id: str
    version: str
    checks: tuple[_Check, ...]
    on_create: CreateTerms | None

    def check(self, props: Mapping[str, object]) -> Breach | None:
        """The first promise ``props`` (ontology keys to converted values) breaks, or None."""
        for c in self.checks:
            if c.key not in props:
                continue
            value = props[c.key]
            if value is None:
                if c.required:
                    return self._breach(
                        f"{c.clause}.required", f"{c.qname} is required and may not be removed"
                    )
                continue
            if c.enum is not None and value not in c.enum:
                return self._breach(
                    f"{c.clause}.enum", f"{c.qname} = {value!r} is not one of {sorted(c.enum)}"
                )
            if (c.low is not None or c.high is not None) and isinstance(value, int | float):
                if c.low is not None and (value < c.low or (value == c.low and not c.low_inclusive)):
                    bound = "minimum" if c.low_inclusive else "exclusiveMinimum"
                    return self._breach(
                        f"{c.clause}.logicalTypeOptions.{bound}", f"{c.qname} = {value!r} is below {c.low:g}"
                    )
                if c.high is not None and (value > c.high or (value == c.high and not c.high_inclusive)):
                    bound = "maximum" if c.high_inclusive else "exclusiveMaximum"
                    return self._breach(
                        f"{c.clause}.logicalTypeOptions.{bound}", f"{c.qname} = {value!r} is above {c.high:g}"
                    )
        return None

    def _breach(self, clause: str, message: str) -> Breach:
        return Breach(self.contract_id, self.version, clause, message)


class Enforcer:
    """One producer's contract, ready for the worker's hot path: per class its rules, built on first use;
    per label whether it is within the maximum, decided once."""

    def __init__(self, contract: Contract, ontology: Ontology) -> None:
        self.contract = contract
        self.ontology = ontology
        self.maximum = parse(contract.maximum_label)
        self._rules: dict[str, ClassRules | Breach] = {}
        self._labels: dict[int, Breach | None] = {}

    def rules(self, class_name: str) -> ClassRules | Breach:
        """The class's rules, or the breach of publishing a class the contract does not promise."""
        found = self._rules.get(class_name)
        if found is None:
            found = self._rules[class_name] = self._build(class_name)
        return found

    def _build(self, class_name: str) -> ClassRules | Breach:
        c = self.contract
        lineage = [class_name, *self.ontology.ancestors(class_name)]
        promised = [c.classes[name] for name in lineage if name in c.classes]
        if not promised:
            return Breach(
                c.id,
                c.version,
                "schema",
                f"class {class_name} is not promised by the contract (it promises {sorted(c.classes)})",
            )
        attributes = self.ontology.attributes_of(class_name)
        checks: list[_Check] = []
        required: list[tuple[str, str, str]] = []
        for promise in promised:
            for qname, p in promise.attributes.items():
                attr = attributes.get(qname)
                if attr is None:
                    continue  # lint refuses such a contract; nothing to check here
                low, high = lower_bound(p.bounds), upper_bound(p.bounds)
                checks.append(
                    _Check(
                        key=attr.key,
                        qname=qname,
                        clause=p.clause,
                        low=low[0] if low else None,
                        low_inclusive=not low[1] if low else True,
                        high=high[0] if high else None,
                        high_inclusive=not high[1] if high else True,
                        enum=frozenset(p.enum) if p.enum is not None else None,
                        required=p.required,
                    )
                )
                if p.required:
                    required.append((attr.key, qname, p.clause))
        on_create = CreateTerms(c.id, c.version, tuple(required)) if required else None
        return ClassRules(c.id, c.version, tuple(checks), on_create)

    def label(self, lid: int, label: Label | str) -> Breach | None:
        """Whether an object labelled ``label`` (interned as ``lid``) stays within the maximum label."""
        if lid in self._labels:
            return self._labels[lid]
        verdict: Breach | None = None
        if isinstance(label, str):
            label = parse(label)
        if not implies(self.maximum, label):
            c = self.contract
            verdict = Breach(
                c.id,
                c.version,
                "customProperties.maximumLabel",
                f"label {canonical(label)!r} is more restrictive than the maximum {c.maximum_label!r}",
            )
        if len(self._labels) < 10_000:
            self._labels[lid] = verdict
        return verdict


class ContractBook:
    """The contracts the worker enforces, by producer; a producer without a contract is not checked."""

    def __init__(self, contracts: Mapping[str, Contract], ontology: Ontology) -> None:
        self.contracts = dict(contracts)
        self._enforcers = {pid: Enforcer(c, ontology) for pid, c in contracts.items()}

    def enforcer(self, producer: str) -> Enforcer | None:
        return self._enforcers.get(producer)

    @classmethod
    def from_folder(cls, directory: Path, ontology: Ontology, registry: ProducerRegistry) -> ContractBook:
        """Load and lint the folder's contracts; :class:`ContractError` listing every problem if any."""
        contracts = load_contracts(directory)
        problems = [p for c in contracts.values() for p in lint(c, ontology, registry)]
        if problems:
            listed = "\n".join(f"  {p}" for p in problems)
            raise ContractError(f"{directory}: {len(problems)} contract problem(s):\n{listed}")
        return cls(contracts, ontology)
