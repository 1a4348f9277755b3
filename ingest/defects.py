"""Defects of input files: what a converter left out or repaired, at the smallest unit it could.

Real files are not perfectly formed, and one bad value must not sink a whole model. The converters
(:mod:`ingest.cgmes`, :mod:`ingest.difference`, :mod:`ingest.gaslib`, :mod:`ingest.csv_adapter`, and
``hub produce`` for JSON lines) keep converting after a defect and record it here:

* a property whose value the ontology refuses is left out, its object kept;
* an object (element, row, line) that cannot become an event at all is skipped;
* a defect whose meaning is unambiguous is repaired and recorded as ``recovered``: several references
  run together in one ``rdf:resource`` become several references, a date and time run together without
  the ``T`` get it back.

Each :class:`Defect` names the file, the line, the object, the property and the reason, so the operator
can find it in the file; :class:`Defects` collects every one of them (the summary lists them all).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from hub.validation import attribute_problem

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ontology.model import Ontology


class DefectKind(StrEnum):
    """What was wrong, by what the converter did about it."""

    BAD_VALUE = "bad-value"  # the ontology refuses the value: the property is left out
    DATE_SEPARATOR = "date-separator"  # a date and a time run together: the "T" is put back
    JOINED_REFERENCES = "joined-references"  # several references in one attribute: split into several
    BAD_REFERENCE = "bad-reference"  # a reference target that is no mRID: the property is left out
    TOO_MANY_TARGETS = "too-many-targets"  # several targets for a to-one association: left out
    BAD_OBJECT = "bad-object"  # the element, row or line cannot become an event: it is skipped
    BAD_LINE = "bad-line"  # a JSON-lines line that is not a JSON object: it is skipped


@dataclass(frozen=True, slots=True)
class Defect:
    """One defect, located as precisely as the file allows (``line`` is None when it is not known)."""

    # Before the fields: one of them is named ``property``.
    @property
    def skips_object(self) -> bool:
        """True when the whole object (element, row, line) was skipped, not only one property."""
        return self.kind in (DefectKind.BAD_OBJECT, DefectKind.BAD_LINE)

    file: str
    line: int | None
    element: str | None  # the object's mRID (or the row's/element's id) when known
    property: str | None  # the property (qualified name, CSV column, XML attribute) when one is at fault
    kind: DefectKind
    reason: str
    recovered: bool = False  # True: repaired, the meaning kept; False: left out

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = []
        if self.element is not None:
            what.append(f"object {self.element!r}")
        if self.property is not None:
            what.append(f"property {self.property!r}")
        subject = f" {', '.join(what)}:" if what else ""
        fate = "recovered" if self.recovered else ("skipped" if self.skips_object else "left out")
        return f"{where}:{subject} [{self.kind.value}, {fate}] {self.reason}"

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "element": self.element,
            "property": self.property,
            "kind": self.kind.value,
            "reason": self.reason,
            "recovered": self.recovered,
        }


@dataclass
class Defects:
    """Every defect of one conversion, in the order they were found."""

    items: list[Defect] = field(default_factory=list)

    def add(
        self,
        file: object,
        line: int | None,
        element: str | None,
        prop: str | None,
        kind: DefectKind,
        reason: str,
        *,
        recovered: bool = False,
    ) -> Defect:
        defect = Defect(str(file), line, element, prop, kind, reason, recovered)
        self.items.append(defect)
        return defect

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Defect]:
        return iter(self.items)

    @property
    def recovered(self) -> int:
        return sum(1 for d in self.items if d.recovered)

    @property
    def skipped_objects(self) -> int:
        return sum(1 for d in self.items if d.skips_object)

    def kinds(self) -> Counter[str]:
        return Counter(d.kind.value for d in self.items)


# A date and a time with nothing between them ("2021-03-0112:00:00"): the only reading is the date, then
# the time. Anything else between them (a digit, "_", "/") is not guessed at: the value is refused.
_RUN_TOGETHER = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)$"
)


def repair_datetime(text: str) -> str | None:
    """``text`` with the missing ``T`` between its date and time put back, or None if that is not it."""
    match = _RUN_TOGETHER.match(text.strip())
    if match is None:
        return None
    return f"{match.group(1)}T{match.group(2)}"


# Where several references were written into one attribute: whitespace, commas, or a "#" that starts
# the next one ("#_a#_b", "#_a #_b", "#_a,#_b").
_REFERENCE_BREAK = re.compile(r"[\s,]+|(?<=.)(?=#)|(?<=.)(?=urn:uuid:)")


def split_references(resource: str) -> list[str] | None:
    """The references run together in ``resource``, or None unless there are several, each one a
    reference (``#...`` or ``urn:uuid:...``)."""
    parts = [p for p in _REFERENCE_BREAK.split(resource.strip()) if p]
    if len(parts) < 2 or not all(p.startswith("#") or p.startswith("urn:uuid:") for p in parts):
        return None
    return parts


def check_value(
    ontology: Ontology, class_name: str, qname: str, value: object
) -> tuple[DefectKind | None, object, str]:
    """What to do with one attribute value, by the worker's own check (:func:`attribute_problem`).

    ``(None, value, "")``: keep it. ``(DATE_SEPARATOR, repaired, reason)``: keep the repaired value and
    report it recovered. ``(BAD_VALUE, None, reason)``: leave the property out and report it.
    """
    problem = attribute_problem(ontology, class_name, qname, value)
    if problem is None:
        return None, value, ""
    if isinstance(value, str):
        attribute = ontology.attribute(class_name, qname)
        repaired = (
            repair_datetime(value) if attribute is not None and attribute.datatype == "datetime" else None
        )
        if repaired is not None and attribute_problem(ontology, class_name, qname, repaired) is None:
            return (
                DefectKind.DATE_SEPARATOR,
                repaired,
                f"{qname} value {value!r} runs date and time together; read as {repaired!r}",
            )
    return DefectKind.BAD_VALUE, None, f"{problem}: value {value!r}"
