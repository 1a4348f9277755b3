"""GasLib compressor-station files (``.cs``, http://gaslib.zib.de/CompressorStations) to hub events.

A ``.cs`` file belongs to a ``.net`` network and lists, per ``compressorStation`` (by the id the ``.net``
gives the station), its ``compressors`` (``turboCompressor``, ``pistonCompressor``), its ``drives``
(``gasTurbine``, ``gasDrivenMotor``, ``electricMotor``, ``steamTurbine``) and its ``configurations``. Each
compressor becomes a ``GasCompressorUnit`` and each drive a ``GasCompressorDrive``, both referring to their
station; a unit refers to the drive its ``drive`` attribute names, and takes the nominal speed of the first
configuration that uses it. Value children become attributes as in the ``.net`` converter (units converted
into the ontology's); a polynomial's numbered coefficients (``power_fun_coeff_1`` ...) become one attribute,
the coefficients in order. Measurement tables (``specificEnergyConsumptionMeasurements`` and the like) are
not mapped: they are counted in ``stats.skipped_properties``.

The station itself is the ``.net`` file's: this converter never publishes it, it only refers to its mRID
(``<network>.<station id>``), so the network's name must be the ``.net`` file's (``network=``). GasLib ids
of drives and compressors are unique within their station only: their mRIDs are
``<network>.<station id>.<id>``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree

from hub.events import MRID_PATTERN, Event
from ingest.cgmes import ConversionError, split_tag
from ingest.gaslib import NETWORK_ASSOCIATION, GasLibConverter, gaslib_mrid, network_slug

CS_NS = "http://gaslib.zib.de/CompressorStations"
STATION = f"{{{CS_NS}}}compressorStation"
COMPRESSORS = f"{{{CS_NS}}}compressors"
DRIVES = f"{{{CS_NS}}}drives"
CONFIGURATION = f"{{{CS_NS}}}configuration"
UNIT_STATION = "GasCompressorUnit.CompressorStation"
DRIVE_STATION = "GasCompressorDrive.CompressorStation"
UNIT_KIND = "GasCompressorUnit.kind"
DRIVE_KIND = "GasCompressorDrive.kind"
NOMINAL_SPEED = "nominalSpeed"
# GasLib element -> literal of GasCompressorKind; a drive's element name is its GasDriveKind literal.
COMPRESSOR_KINDS = {"turboCompressor": "turbo", "pistonCompressor": "piston"}
_COEFFICIENT = re.compile(r"^(?P<base>.+_coeff)_(?P<index>[0-9]+)$")


@dataclass
class CompressorStats:
    """What a ``.cs`` conversion saw."""

    network: str = ""
    stations: int = 0
    drives: int = 0
    units: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    skipped_elements: Counter[str] = field(default_factory=Counter)
    skipped_properties: Counter[str] = field(default_factory=Counter)
    # "<station>.<unit>" -> the drive id it names that its station does not have
    missing_drives: dict[str, str] = field(default_factory=dict)


class CompressorStationConverter(GasLibConverter):
    """Streams one ``.cs`` file into events; ``compressor_stats`` tells what it saw.

    It shares the ``.net`` converter's ontology lookups and value conversion, so a GasLib member means the
    same in both files.
    """

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
        super().__init__(
            source=source, version=version, time=time, label=label, ontology=ontology, network=network
        )
        self.compressor_stats = CompressorStats()

    def _object(
        self,
        element: Any,
        station_id: str,
        network: str,
        path: Path,
        kind: tuple[str, str],
        extra: dict[str, Any],
    ) -> Event | None:
        _, local = split_tag(element.tag)
        class_name = self.class_name(local)
        if class_name is None:
            self.compressor_stats.skipped_elements[local] += 1
            return None
        element_id = element.get("id")
        where = f"{path}: <compressorStation id={station_id!r}> <{local} id={element_id!r}>"
        if not element_id:
            raise ConversionError(f"{where}: no id attribute")
        known_attributes = self.ontology.attributes_of(class_name)
        known_associations = self.ontology.associations_of(class_name)
        station_link = UNIT_STATION if class_name == "GasCompressorUnit" else DRIVE_STATION
        attributes: dict[str, Any] = {"IdentifiedObject.name": element_id, kind[0]: kind[1]}
        references: dict[str, str | list[str]] = {
            NETWORK_ASSOCIATION: network,
            station_link: gaslib_mrid(network, station_id),
        }
        coefficients: dict[str, dict[int, str]] = {}

        def put(member: str, raw: str, unit: str | None) -> None:
            qname = self.qname(local, member)
            if qname is not None and qname in known_associations:
                # Drives are named within their station, as their mRIDs are.
                references[qname] = gaslib_mrid(network, f"{station_id}.{raw}")
            elif qname is not None and qname in known_attributes:
                attributes[qname] = self._value(class_name, qname, raw, unit, where)
            else:
                self.compressor_stats.skipped_properties[f"{local}.{member}"] += 1

        for attr_name, raw in element.attrib.items():
            if attr_name != "id" and not attr_name.startswith("{"):
                put(attr_name, raw, None)
        for child in element:
            if not isinstance(child.tag, str):
                continue
            _, member = split_tag(child.tag)
            raw_value = child.get("value")
            if raw_value is None:
                # A table of measurements, not one value.
                self.compressor_stats.skipped_properties[f"{local}.{member}"] += 1
                continue
            numbered = _COEFFICIENT.match(member)
            if numbered is not None:
                coefficients.setdefault(numbered["base"], {})[int(numbered["index"])] = raw_value.strip()
                continue
            put(member, raw_value, child.get("unit"))
        for base, values in coefficients.items():
            if sorted(values) != list(range(1, len(values) + 1)):
                raise ConversionError(f"{where}: coefficients {base}_N are not numbered 1..{len(values)}")
            put(base, " ".join(values[i] for i in sorted(values)), None)
        for member, raw in extra.items():
            put(member, raw, None)
        mrid = gaslib_mrid(network, f"{station_id}.{element_id}")
        return self._upsert(mrid, class_name, attributes, references)

    def convert(self, path: Path | str) -> Iterator[Event]:
        path = Path(path)
        network = network_slug(self.network or path.stem)
        self.compressor_stats.network = network
        if not MRID_PATTERN.match(network):
            raise ConversionError(f"{path}: network name {network!r} cannot start an mRID")
        try:
            root = etree.parse(str(path)).getroot()
        except etree.XMLSyntaxError as exc:
            raise ConversionError(f"{path}: not well-formed XML: {exc}") from exc
        except OSError as exc:
            raise ConversionError(f"{path}: cannot read: {exc}") from exc
        if root.tag != f"{{{CS_NS}}}compressorStations":
            raise ConversionError(f"{path}: root element {root.tag!r} is not {{{CS_NS}}}compressorStations")
        for station in root.iter(STATION):
            station_id = station.get("id")
            if not station_id:
                raise ConversionError(f"{path}: <compressorStation> has no id attribute")
            self.compressor_stats.stations += 1
            drive_ids = {d.get("id") for d in station.iterfind(f"{DRIVES}/*") if isinstance(d.tag, str)}
            for drive in station.iterfind(f"{DRIVES}/*"):
                if not isinstance(drive.tag, str):
                    continue
                _, local = split_tag(drive.tag)
                event = self._object(drive, station_id, network, path, (DRIVE_KIND, local), {})
                if event is not None:
                    self.compressor_stats.drives += 1
                    self.compressor_stats.classes[event.class_] += 1
                    yield event
            nominal = self._nominal_speeds(station)
            for unit in station.iterfind(f"{COMPRESSORS}/*"):
                if not isinstance(unit.tag, str):
                    continue
                _, local = split_tag(unit.tag)
                drive_id = unit.get("drive")
                if drive_id is not None and drive_id not in drive_ids:
                    self.compressor_stats.missing_drives[f"{station_id}.{unit.get('id')}"] = drive_id
                extra = {NOMINAL_SPEED: nominal[unit.get("id") or ""]} if unit.get("id") in nominal else {}
                kind = (UNIT_KIND, COMPRESSOR_KINDS.get(local, local))
                event = self._object(unit, station_id, network, path, kind, extra)
                if event is not None:
                    self.compressor_stats.units += 1
                    self.compressor_stats.classes[event.class_] += 1
                    yield event

    @staticmethod
    def _nominal_speeds(station: Any) -> dict[str, str]:
        """Compressor id -> nominal speed, from the first configuration that names the compressor."""
        speeds: dict[str, str] = {}
        for configuration in station.iter(CONFIGURATION):
            for compressor in configuration.iter(f"{{{CS_NS}}}compressor"):
                cid, speed = compressor.get("id"), compressor.get(NOMINAL_SPEED)
                if cid and speed is not None:
                    speeds.setdefault(cid, speed)
        return speeds


def convert_compressor_stations(
    path: Path | str,
    *,
    source: str,
    version: int = 1,
    time: datetime | None = None,
    label: str | None = None,
    ontology: Any | None = None,
    network: str | None = None,
    stats: CompressorStats | None = None,
) -> Iterator[Event]:
    """Events for one ``.cs`` file: one ``upsert`` per drive and per compressor unit.

    ``network`` must name the network as its ``.net`` file was converted (default: the file's stem).
    """
    converter = CompressorStationConverter(
        source=source, version=version, time=time, label=label, ontology=ontology, network=network
    )
    if stats is not None:
        converter.compressor_stats = stats
    return converter.convert(path)
