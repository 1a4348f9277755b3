"""IEC 61970-552 difference models (``dm:DifferenceModel``) to hub events.

A difference model states which RDF statements to remove (``dm:reverseDifferences``) and which to add
(``dm:forwardDifferences``) to get from one model version to the next. Read as hub events:

- an object in the forward differences becomes an ``upsert`` carrying only what changed: the added
  statements, plus ``null`` for an attribute (or an empty list for an association) whose statement is
  removed and not replaced, so the PATCH semantics of ``upsert`` remove it;
- an object typed (``<cim:Class rdf:about=...>``, i.e. its ``rdf:type`` statement) only in the reverse
  differences was removed and becomes a ``delete``;
- an object described only with ``rdf:Description`` in the reverse differences lost some properties and
  becomes an ``upsert`` removing them.

A change given as ``rdf:Description`` does not say the object's class, which every event needs; the
class comes from a typed element elsewhere in the same difference model or from ``classes`` (mRID ->
ontology class, e.g. collected from the events of the base model). An association end that is
to-many is replaced as a whole by ``upsert``, so a difference model should restate the whole set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.events import Event, EventType
from ingest.cgmes import (
    RDF_DESCRIPTION,
    CgmesConverter,
    CimObject,
    ConversionError,
    ConversionStats,
    ModelHeader,
    OntologyNames,
    iter_elements,
    object_mrid,
    read_properties,
)
from ingest.defects import DefectKind


@dataclass
class DifferenceParts:
    """The two halves of a difference model, each an index of mRID -> statements about that object."""

    forward: dict[str, CimObject]
    reverse: dict[str, CimObject]
    header: ModelHeader | None


class DifferenceConverter(CgmesConverter):
    """Converts one difference model file into upserts and deletes."""

    # mRID -> the line where the file first names the object, to locate a change that cannot be converted.
    lines: dict[str, int | None]

    def read_difference(self, path: Path) -> DifferenceParts:
        self.lines = {}
        forward: dict[str, CimObject] = {}
        reverse: dict[str, CimObject] = {}
        header: ModelHeader | None = None
        self.stats.files += 1
        for section, element in iter_elements(path):
            if isinstance(section, ModelHeader):
                self.stats.headers.append(section)
                if section.kind == "DifferenceModel":
                    header = section
                continue
            if section == "model":
                raise ConversionError(
                    f"{path}: element {element.tag} lies outside dm:forwardDifferences and "
                    "dm:reverseDifferences; is this a full model? convert it with ingest.cgmes.convert_cgmes"
                )
            self.stats.elements += 1
            named = object_mrid(element, path, self.stats.defects)
            if named is None:
                continue
            mrid, _defined = named
            self.lines.setdefault(mrid, element.sourceline)
            index = forward if section == "forward" else reverse
            obj = index.get(mrid)
            tag = element.tag
            typed = tag != RDF_DESCRIPTION
            if obj is None:
                obj = CimObject(mrid=mrid, tags=[tag] if typed else [], defined=typed)
                index[mrid] = obj
            elif typed and tag not in obj.tags:
                obj.tags.append(tag)
                obj.defined = True
            read_properties(element, self.names, obj, self.stats.skipped_properties, path, self.stats.defects)
        if header is None:
            raise ConversionError(
                f"{path}: no dm:DifferenceModel header; not an IEC 61970-552 difference model"
            )
        return DifferenceParts(forward=forward, reverse=reverse, header=header)

    def _class_of(
        self, mrid: str, parts: list[CimObject], classes: Mapping[str, str], path: Path
    ) -> str | None:
        tags = [tag for part in parts for tag in part.tags]
        if tags:
            return self.resolve_class(CimObject(mrid=mrid, tags=tags, defined=True))
        known = classes.get(mrid)
        if known is None:
            self.stats.defects.add(
                path,
                self.lines.get(mrid),
                mrid,
                None,
                DefectKind.BAD_OBJECT,
                "changed with rdf:Description only, so its class is unknown; pass its class in `classes` "
                "(mRID -> class) or type the element",
            )
        return known

    def convert_difference(
        self, path: Path | str, classes: Mapping[str, str] | None = None
    ) -> Iterator[Event]:
        path = Path(path)
        parts = self.read_difference(path)
        known = classes or {}
        stats = self.stats
        for mrid, added in parts.forward.items():
            removed = parts.reverse.get(mrid)
            class_name = self._class_of(mrid, [added] if removed is None else [added, removed], known, path)
            if class_name is None:
                continue
            attributes: dict[str, Any] = dict(added.attributes)
            references: dict[str, list[str]] = dict(added.references)
            if removed is not None:
                for qname in removed.attributes:
                    attributes.setdefault(qname, None)
                for qname in removed.references:
                    references.setdefault(qname, [])
            stats.objects += 1
            stats.classes[class_name] += 1
            where = {**(removed.where or {}), **(added.where or {})} if removed is not None else added.where
            yield self.make_event(EventType.UPSERT, mrid, class_name, attributes, references, where)
        for mrid, removed in parts.reverse.items():
            if mrid in parts.forward:
                continue
            class_name = self._class_of(mrid, [removed], known, path)
            if class_name is None:
                continue
            stats.objects += 1
            stats.classes[class_name] += 1
            if removed.defined:
                yield self.make_event(EventType.DELETE, mrid, class_name, {}, {})
            else:
                yield self.make_event(
                    EventType.UPSERT,
                    mrid,
                    class_name,
                    dict.fromkeys(removed.attributes),
                    {qname: [] for qname in removed.references},
                )


def convert_difference(
    path: Path | str,
    *,
    source: str,
    version: int = 1,
    time: datetime | None = None,
    label: str | None = None,
    ontology: OntologyNames | None = None,
    classes: Mapping[str, str] | None = None,
    stats: ConversionStats | None = None,
) -> Iterator[Event]:
    """Events for one IEC 61970-552 difference model: upserts of what changed, deletes of what went.

    ``version`` must be above the version the base model was published with, or the hub ignores the
    changes as stale.
    """
    converter = DifferenceConverter(source=source, version=version, time=time, label=label, ontology=ontology)
    if stats is not None:
        converter.stats = stats
    return converter.convert_difference(path, classes)
