"""GasLib ``.net`` networks (http://gaslib.zib.de/Gas) to hub events.

A GasLib network lists nodes (``source``, ``sink``, ``innode``) and connections (``pipe``, ``shortPipe``,
``compressorStation``, ``valve``, ``controlValve``, ``resistor``). Each becomes one ``upsert`` of the gas
ontology class that the ontology maps the element to; the element's XML attributes (``x``, ``y``,
``geoWGS84Long``, ``alias``, ...) and its value children (``<length unit="km" value="55"/>``) become
attributes named by the ontology, with values converted into the unit the ontology states; ``from``,
``to`` (and ``fuelGasVertex``) become references to the nodes.

GasLib ids are only unique inside one network ("node_1" is in every file), so an object's mRID is the
network's name and the id: ``gaslib-11.entry01``.

A defect costs one property or one element (:mod:`ingest.defects`): a value that cannot be read or
converted, or that the ontology refuses, is left out and its element kept; an element without an id is
skipped; each is recorded in ``GasLibStats.defects`` with the file, line, element and property.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from hub.events import MRID_PATTERN, Event, EventType
from ingest.cgmes import ConversionError, default_ontology, event_id, split_tag
from ingest.defects import DefectKind, Defects, check_value

GAS_NS = "http://gaslib.zib.de/Gas"
FRAMEWORK_NS = "http://gaslib.zib.de/Framework"
NODES = f"{{{FRAMEWORK_NS}}}nodes"
CONNECTIONS = f"{{{FRAMEWORK_NS}}}connections"
INFORMATION = f"{{{FRAMEWORK_NS}}}information"
NETWORK_ASSOCIATION = "GasObject.Network"

# mRIDs that would be too long or malformed as "<network>.<id>" are uuid5 of the same text instead.
MRID_NAMESPACE = uuid.UUID("0b9a4c1e-52c4-5f7e-8f0e-3d2a6c5b7e90")

# Scale to a base unit per dimension; GasLib writes some units two ways ("m" and "meter").
_LINEAR_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "meter": ("length", 1.0),
    "km": ("length", 1000.0),
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "bar": ("pressure", 1.0),
    "barg": ("pressure_gauge", 1.0),
    "mbar": ("pressure", 0.001),
    "Pa": ("pressure", 1e-5),
    "kPa": ("pressure", 0.01),
    "MPa": ("pressure", 10.0),
    "1000m_cube_per_hour": ("flow", 1000.0),
    "m_cube_per_hour": ("flow", 1.0),
    "1000m3/h": ("flow", 1000.0),
    "m3/h": ("flow", 1.0),
    "MJ_per_m_cube": ("energy_density", 1.0),
    "MJ/m3": ("energy_density", 1.0),
    "kg_per_m_cube": ("density", 1.0),
    "kg/m3": ("density", 1.0),
    "kg_per_kmol": ("molar_mass", 1.0),
    "kg/kmol": ("molar_mass", 1.0),
    "W_per_m_square_per_K": ("heat_transfer", 1.0),
    "W/(m2.K)": ("heat_transfer", 1.0),
    "W/m2K": ("heat_transfer", 1.0),
    "K": ("temperature", 1.0),
    "MW": ("power", 1.0),
    "kW": ("power", 0.001),
    # Compressor-station files (.cs): speeds, swept volumes, torques.
    "per_min": ("rotational_speed", 1.0),
    "1/min": ("rotational_speed", 1.0),
    "m_cube": ("volume", 1.0),
    "m3": ("volume", 1.0),
    "kNm": ("torque", 1.0),
}
_CELSIUS = {"Celsius", "C", "°C", "degC"}


def convert_unit(value: float, unit: str, target: str) -> float:
    """``value`` in ``unit`` expressed in ``target``; ConversionError when they measure different things."""
    if unit == target or (unit in _CELSIUS and target in _CELSIUS):
        return value
    if unit in _CELSIUS and target == "K":
        return value + 273.15
    if unit == "K" and target in _CELSIUS:
        return value - 273.15
    source_dim = _LINEAR_UNITS.get(unit)
    target_dim = _LINEAR_UNITS.get(target)
    if source_dim is None or target_dim is None or source_dim[0] != target_dim[0]:
        raise ConversionError(f"unit {unit!r} cannot be converted to {target!r}")
    return value * source_dim[1] / target_dim[1]


def network_slug(text: str) -> str:
    """A file stem or title as the first part of an mRID: lower case, only mRID characters."""
    slug = re.sub(r"[^a-z0-9_.:\-]+", "-", text.strip().lower()).strip("-.")
    return slug or "gaslib"


def gaslib_mrid(network: str, element_id: str) -> str:
    candidate = f"{network}.{element_id}"
    if MRID_PATTERN.match(candidate):
        return candidate
    return str(uuid.uuid5(MRID_NAMESPACE, candidate))


@dataclass
class GasLibStats:
    """What a GasLib conversion saw: objects per class and what the ontology did not know."""

    network: str = ""
    title: str = ""
    nodes: int = 0
    connections: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    skipped_elements: Counter[str] = field(default_factory=Counter)  # GasLib element names, e.g. "resistor"
    skipped_properties: Counter[str] = field(default_factory=Counter)  # "pipe.someParameter"
    dangling: dict[str, list[str]] = field(default_factory=dict)  # node id -> connections naming it
    defects: Defects = field(default_factory=Defects)  # what was left out or repaired, and where


class GasLibConverter:
    """Streams one ``.net`` file into events; ``stats`` tells what it saw."""

    def __init__(
        self,
        *,
        source: str,
        version: int = 1,
        time: datetime | None = None,
        label: str | None = None,
        ontology: Any | None = None,
        network: str | None = None,
    ) -> None:
        if version < 1:
            raise ConversionError(f"version {version!r} must be a positive integer")
        self.source = source
        self.version = version
        self.time = time if time is not None else datetime.now(UTC)
        if self.time.tzinfo is None:
            raise ConversionError(f"time {self.time.isoformat()!r} has no time zone")
        self.label = label
        self.ontology = ontology if ontology is not None else default_ontology()
        self.network = network
        self.stats = GasLibStats()
        self._classes: dict[str, str | None] = {}
        self._qnames: dict[str, str | None] = {}

    def class_name(self, element: str) -> str | None:
        if element not in self._classes:
            self._classes[element] = self.ontology.canonical_class(element, GAS_NS)
        return self._classes[element]

    def qname(self, element: str, member: str) -> str | None:
        key = f"{element}.{member}"
        if key not in self._qnames:
            self._qnames[key] = self.ontology.canonical_qname(key, GAS_NS)
        return self._qnames[key]

    def _name_qname(self, element: str, class_name: str) -> str | None:
        """Where the GasLib id goes: the ontology's mapping of ``<element>.id``, else the object's name."""
        mapped = self.qname(element, "id")
        if mapped is not None:
            return mapped
        attributes = self.ontology.attributes_of(class_name)
        if "IdentifiedObject.name" in attributes:
            return "IdentifiedObject.name"
        names = [q for q in attributes if q.endswith(".name")]
        return names[0] if names else None

    def _value(self, class_name: str, qname: str, raw: str, unit: str | None, where: str) -> Any:
        attribute = self.ontology.attribute(class_name, qname)
        if attribute is None:
            return raw
        if attribute.datatype == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes"):
                return "true"
            if lowered in ("0", "false", "no"):
                return "false"
            raise ConversionError(f"{where}: {qname} value {raw!r} is not a boolean")
        if attribute.datatype in ("float", "int") and unit and attribute.unit and unit != attribute.unit:
            try:
                number = float(raw)
            except ValueError:
                raise ConversionError(f"{where}: {qname} value {raw!r} is not a number") from None
            try:
                converted = convert_unit(number, unit, attribute.unit)
            except ConversionError as exc:
                raise ConversionError(f"{where}: {qname}: {exc}") from None
            # 12 significant digits hide the binary noise of the scaling (8e-06 m -> 0.008 mm).
            return f"{converted:.12g}" if attribute.datatype == "float" else str(round(converted))
        return raw

    def _event(self, tag: str, element: Any, path: Path, network: str) -> Event | None:
        _, local = split_tag(tag)
        class_name = self.class_name(local)
        where = f"{path}: <{local} id={element.get('id')!r}>"
        if class_name is None:
            self.stats.skipped_elements[local] += 1
            return None
        element_id = element.get("id")
        if not element_id:
            self.stats.defects.add(
                path, element.sourceline, None, None, DefectKind.BAD_OBJECT, f"<{local}> has no id"
            )
            return None
        mrid = gaslib_mrid(network, element_id)
        known_attributes = self.ontology.attributes_of(class_name)
        known_associations = self.ontology.associations_of(class_name)
        attributes: dict[str, Any] = {}
        references: dict[str, str | list[str]] = {}
        name_qname = self._name_qname(local, class_name)
        if name_qname is not None:
            attributes[name_qname] = element_id
        if NETWORK_ASSOCIATION in known_associations:
            references[NETWORK_ASSOCIATION] = network

        defects = self.stats.defects

        def put(member: str, raw: str, unit: str | None, line: int | None) -> None:
            qname = self.qname(local, member)
            if qname is None:
                self.stats.skipped_properties[f"{local}.{member}"] += 1
            elif qname in known_associations:
                target = gaslib_mrid(network, raw)
                association = known_associations[qname]
                references[qname] = [target] if association.many else target
            elif qname in known_attributes:
                try:
                    value = self._value(class_name, qname, raw, unit, where)
                except ConversionError as exc:
                    reason = str(exc).removeprefix(f"{where}: ")
                    defects.add(path, line, element_id, member, DefectKind.BAD_VALUE, reason)
                    return
                kind, value, reason = check_value(self.ontology, class_name, qname, value)
                if kind is not None:
                    recovered = kind is DefectKind.DATE_SEPARATOR
                    defects.add(path, line, element_id, member, kind, reason, recovered=recovered)
                    if not recovered:
                        return
                attributes[qname] = value
            else:
                self.stats.skipped_properties[f"{local}.{member}"] += 1

        for attr_name, raw in element.attrib.items():
            if attr_name == "id" or attr_name.startswith("{"):
                continue
            if attr_name == "alias" and not raw:
                continue  # GasLib writes alias="" for "no alias"
            put(attr_name, raw, None, element.sourceline)
        for child in element:
            if not isinstance(child.tag, str):
                continue
            _, member = split_tag(child.tag)
            raw_value = child.get("value")
            if raw_value is None:
                raw_value = (child.text or "").strip()
            put(member, raw_value, child.get("unit"), child.sourceline)
        return self._upsert(mrid, class_name, attributes, references)

    def _upsert(
        self, mrid: str, class_name: str, attributes: dict[str, Any], references: dict[str, str | list[str]]
    ) -> Event:
        return Event.model_validate(
            {
                "id": event_id(self.source, mrid, self.version, EventType.UPSERT),
                "source": self.source,
                "type": EventType.UPSERT,
                "subject": mrid,
                "time": self.time,
                "version": self.version,
                "class": class_name,
                "attributes": attributes,
                "references": references,
                "label": self.label,
            }
        )

    def _network_event(self, information: Any, network: str, path: Path) -> Event | None:
        """The network as a whole, from ``framework:information`` (title, type, date, documentation)."""
        class_name = self.class_name("network")
        if class_name is None:
            self.stats.skipped_elements["network"] += 1
            return None
        known = self.ontology.attributes_of(class_name)
        attributes: dict[str, Any] = {}
        if information is not None:
            for child in information:
                if not isinstance(child.tag, str):
                    continue
                _, member = split_tag(child.tag)
                qname = self.qname("network", member)
                if qname is None or qname not in known:
                    self.stats.skipped_properties[f"network.{member}"] += 1
                    continue
                kind, value, reason = check_value(
                    self.ontology, class_name, qname, (child.text or "").strip()
                )
                if kind is not None:
                    recovered = kind is DefectKind.DATE_SEPARATOR
                    self.stats.defects.add(
                        path, child.sourceline, network, member, kind, reason, recovered=recovered
                    )
                    if not recovered:
                        continue
                attributes[qname] = value
        name_qname = self._name_qname("network", class_name)
        if name_qname is not None and not attributes.get(name_qname):
            attributes[name_qname] = network
        return self._upsert(network, class_name, attributes, {})

    def convert(self, path: Path | str) -> Iterator[Event]:
        path = Path(path)
        network = network_slug(self.network or path.stem)
        self.stats.network = network
        if not MRID_PATTERN.match(network):
            raise ConversionError(f"{path}: network name {network!r} cannot start an mRID")
        node_ids: set[str] = set()
        endpoints: list[tuple[str, str]] = []
        network_done = False
        try:
            for _event, element in etree.iterparse(str(path), events=("end",), remove_comments=True):
                parent = element.getparent()
                if parent is None:
                    continue
                tag = element.tag
                if tag == INFORMATION:
                    network_done = True
                    self.stats.title = (element.findtext(f"{{{FRAMEWORK_NS}}}title") or "").strip()
                    network_event = self._network_event(element, network, path)
                    if network_event is not None:
                        self.stats.classes[network_event.class_] += 1
                        yield network_event
                    continue
                if not network_done and parent.tag in (NODES, CONNECTIONS):
                    # No framework:information: the network object still exists, named after the file.
                    network_done = True
                    network_event = self._network_event(None, network, path)
                    if network_event is not None:
                        self.stats.classes[network_event.class_] += 1
                        yield network_event
                if parent.tag == NODES:
                    node_ids.add(element.get("id") or "")
                    event = self._event(tag, element, path, network)
                    if event is not None:
                        self.stats.nodes += 1
                        self.stats.classes[event.class_] += 1
                        yield event
                elif parent.tag == CONNECTIONS:
                    for end in ("from", "to", "fuelGasVertex"):
                        target = element.get(end)
                        if target is not None:
                            endpoints.append((target, element.get("id") or ""))
                    event = self._event(tag, element, path, network)
                    if event is not None:
                        self.stats.connections += 1
                        self.stats.classes[event.class_] += 1
                        yield event
                else:
                    continue
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as exc:
            raise ConversionError(f"{path}: not well-formed XML: {exc}") from exc
        except OSError as exc:
            raise ConversionError(f"{path}: cannot read: {exc}") from exc
        for target, connection in endpoints:
            if target not in node_ids:
                self.stats.dangling.setdefault(target, []).append(connection)


def convert_gaslib(
    path: Path | str,
    *,
    source: str,
    version: int = 1,
    time: datetime | None = None,
    label: str | None = None,
    ontology: Any | None = None,
    network: str | None = None,
    stats: GasLibStats | None = None,
) -> Iterator[Event]:
    """Events for one GasLib network: one ``upsert`` per node and per connection.

    ``network`` names the network in the mRIDs (default: the file's stem, e.g. ``gaslib-11``).
    """
    converter = GasLibConverter(
        source=source, version=version, time=time, label=label, ontology=ontology, network=network
    )
    if stats is not None:
        converter.stats = stats
    return converter.convert(path)
