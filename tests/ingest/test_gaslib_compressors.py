"""GasLib compressor-station files (.cs) to gas-ontology events, checked against an lxml reading of the files.

GasLib-11 and GasLib-40 ship a .cs (turbo compressors and gas turbines only); GasLib-handmade.cs, written for
these tests after the same format, has piston compressors, gas-driven and electric motors, a steam turbine, a
measurement table and two configurations.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from hub.validation import validate_event
from ingest.cgmes import ConversionError
from ingest.gaslib import gaslib_mrid
from ingest.gaslib_compressors import CompressorStats, convert_compressor_stations
from ontology.loader import load_ontology
from ontology.model import Ontology

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "gas"
HANDMADE = Path(__file__).resolve().parent / "data" / "GasLib-handmade.cs"
CS = "{http://gaslib.zib.de/CompressorStations}"
TIME = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
# (file, network its stations belong to)
FILES = [
    (SHARED / "GasLib-11" / "GasLib-11.cs", "gaslib-11"),
    (SHARED / "GasLib-40" / "GasLib-40.cs", "gaslib-40"),
    (HANDMADE, "gaslib-11"),
]


def lxml_count(path: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Independently: drive mRID -> kind, unit mRID -> element, and each object's station mRID."""
    root = etree.parse(str(path)).getroot()
    network = {p: n for p, n in FILES}[path]
    drives: dict[str, str] = {}
    units: dict[str, str] = {}
    station_of: dict[str, str] = {}
    for station in root.findall(f"{CS}compressorStation"):
        sid = station.get("id")
        for group, found in (("drives", drives), ("compressors", units)):
            for element in station.find(f"{CS}{group}"):
                if not isinstance(element.tag, str):
                    continue
                mrid = f"{network}.{sid}.{element.get('id')}"
                found[mrid] = etree.QName(element).localname
                station_of[mrid] = f"{network}.{sid}"
    return drives, units, station_of


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


@pytest.mark.parametrize(("path", "network"), FILES, ids=lambda v: getattr(v, "name", v))
def test_one_object_per_drive_and_compressor_attached_to_its_station(
    path: Path, network: str, ontology: Ontology
) -> None:
    drives, units, station_of = lxml_count(path)
    stats = CompressorStats()
    events = list(
        convert_compressor_stations(
            path, source="nggt", time=TIME, ontology=ontology, network=network, stats=stats
        )
    )
    by_mrid = {e.subject: e for e in events}
    assert len(by_mrid) == len(events)
    assert (stats.drives, stats.units) == (len(drives), len(units))
    assert {m for m, e in by_mrid.items() if e.class_ == "GasCompressorDrive"} == set(drives)
    assert {m for m, e in by_mrid.items() if e.class_ == "GasCompressorUnit"} == set(units)
    for mrid, event in by_mrid.items():
        validate_event(event.to_json_dict(), ontology)
        link = f"{event.class_}.CompressorStation"
        assert (
            event.references[link]
            == station_of[mrid]
            == gaslib_mrid(network, station_of[mrid][len(network) + 1 :])
        )
        assert event.references["GasObject.Network"] == network
    for mrid, kind in drives.items():
        assert by_mrid[mrid].attributes["GasCompressorDrive.kind"] == kind
    for mrid, element in units.items():
        kind = {"turboCompressor": "turbo", "pistonCompressor": "piston"}[element]
        assert by_mrid[mrid].attributes["GasCompressorUnit.kind"] == kind
        # Every unit's drive is a drive of its own station.
        drive = by_mrid[mrid].references["GasCompressorUnit.Drive"]
        assert drive in drives and station_of[drive] == station_of[mrid]
    assert stats.missing_drives == {}


def test_every_kind_of_drive_and_compressor_with_its_values(ontology: Ontology) -> None:
    stats = CompressorStats()
    events = {
        e.subject: e
        for e in convert_compressor_stations(
            HANDMADE, source="nggt", ontology=ontology, network="gaslib-11", stats=stats
        )
    }
    kinds = Counter(
        e.attributes.get("GasCompressorDrive.kind")
        for e in events.values()
        if e.class_ == "GasCompressorDrive"
    )
    assert kinds == {"gasTurbine": 1, "gasDrivenMotor": 1, "electricMotor": 2, "steamTurbine": 1}

    turbo = events["gaslib-11.CS01_entry03_N01.TC_1"].attributes
    assert (turbo["GasCompressorUnit.speedMin"], turbo["GasCompressorUnit.speedMax"]) == ("3500", "6500")
    assert turbo["GasCompressorUnit.surgelineCoefficients"] == "-49.9 27.7 -0.045"
    assert turbo["GasCompressorUnit.speedIsolineCoefficients"] == "62.1 -0.029 4.3e-06"
    # The first configuration that names the unit gives its nominal speed (the second says 6000).
    assert turbo["GasCompressorUnit.nominalSpeed"] == "5200"
    piston = events["gaslib-11.CS01_entry03_N01.PC_1"].attributes
    assert piston["GasCompressorUnit.operatingVolume"] == "0.5"
    assert piston["GasCompressorUnit.maximalTorque"] == "120"
    assert piston["GasCompressorUnit.maximalCompressionRatio"] == "2"
    turbine = events["gaslib-11.CS01_entry03_N01.GT_1"].attributes
    assert turbine["GasCompressorDrive.energyRateCoefficients"] == "5000 2.5 0"
    assert len(turbine["GasCompressorDrive.powerCoefficients"].split()) == 9
    # Ids repeat across stations; the mRIDs do not.
    assert {"gaslib-11.CS01_entry03_N01.TC_1", "gaslib-11.CS02_N04_N05.TC_1"} <= set(events)
    # A measurement table is not one value: counted, not mapped.
    assert stats.skipped_properties == {"gasDrivenMotor.specificEnergyConsumptionMeasurements": 1}


def test_bad_files_are_errors_naming_the_element(tmp_path: Path, ontology: Ontology) -> None:
    wrong_root = tmp_path / "net.cs"
    wrong_root.write_text('<network xmlns="http://gaslib.zib.de/Gas"/>', encoding="utf-8")
    with pytest.raises(ConversionError, match=r"is not \{http://gaslib\.zib\.de/CompressorStations\}"):
        list(convert_compressor_stations(wrong_root, source="nggt", ontology=ontology))
    gap = tmp_path / "gap.cs"
    gap.write_text(
        '<compressorStations xmlns="http://gaslib.zib.de/CompressorStations">'
        '<compressorStation id="cs"><drives><gasTurbine id="d">'
        '<power_fun_coeff_1 value="1"/><power_fun_coeff_3 value="3"/>'
        "</gasTurbine></drives></compressorStation></compressorStations>",
        encoding="utf-8",
    )
    with pytest.raises(ConversionError, match=r"<gasTurbine id='d'>: coefficients power_fun_coeff_N"):
        list(convert_compressor_stations(gap, source="nggt", ontology=ontology))
    broken = tmp_path / "broken.cs"
    broken.write_text("<compressorStations", encoding="utf-8")
    with pytest.raises(ConversionError, match="not well-formed XML"):
        list(convert_compressor_stations(broken, source="nggt", ontology=ontology))
