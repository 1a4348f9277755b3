"""The hub's annotation vocabulary in the OWL files, and the rules that turn CIM names into keys.

Shared by the generator (which writes these annotations) and the loader (which reads them), so the two
can never disagree on a predicate's name or on how a role name becomes a GraphQL field.
"""

from __future__ import annotations

import re

from ontology.model import HUB_NS

HUB = HUB_NS + "#"

# Annotation predicates (local names in the hub namespace).
P_DOMAIN = "domain"  # "Electricity" | "Gas" on every class
P_ABSTRACT = "abstract"  # boolean on every class
P_KEY = "key"  # property key / GraphQL field of an attribute or association
P_DATATYPE = "datatype"  # float | int | bool | string | datetime | enum
P_UNIT = "unit"  # unit of an attribute's value, e.g. "kV", "bar"
P_REL_TYPE = "relType"  # Neo4j relationship type of an association
P_INVERSE_KEY = "inverseKey"  # GraphQL field on the target for the reverse direction
P_MANY = "many"  # boolean: the serialised end is to-many
P_PROFILE = "profile"  # CGMES profile(s) a class or member comes from
P_CIM100_NAME = "cim100Name"  # the CIM 100 (CGMES 3.0) name of a class or member, where it differs
P_GASLIB_NAME = "gaslibName"  # the GasLib .net element or attribute name
ENUMERATION = "Enumeration"  # rdf:type of enumeration classes

GRAPHQL_NAME = re.compile(r"^[A-Za-z][_0-9A-Za-z]*$")

# Fields every GraphQL object type has already; an ontology key equal to one of them is qualified.
# IdentifiedObject.name is the one that is meant to fill the generic "name" field.
RESERVED_FIELDS = frozenset(
    {"mrid", "className", "domain", "label", "producer", "version", "updated", "point", "attributes"}
)


def lower_first(name: str) -> str:
    """``ConductingEquipment`` -> ``conductingEquipment``; ``ACDCTerminal`` -> ``acdcTerminal``."""
    if not name:
        return name
    run = 0
    while run < len(name) and name[run].isupper():
        run += 1
    if run <= 1:
        return name[:1].lower() + name[1:]
    if run == len(name):
        return name.lower()
    # Keep the capital that starts the next word: "DCTerminals" -> "dcTerminals".
    return name[: run - 1].lower() + name[run - 1 :]


def upper_snake(name: str) -> str:
    """``ConductingEquipment`` -> ``CONDUCTING_EQUIPMENT``; ``ACDCTerminal`` -> ``ACDC_TERMINAL``."""
    step = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    step = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step)
    return re.sub(r"[^0-9A-Za-z]+", "_", step).strip("_").upper()


def qualified_key(owner: str, key: str) -> str:
    """The key used when a plain key collides: the owner's name in front (``svStatusInService``)."""
    return lower_first(owner) + key[:1].upper() + key[1:]


def qualified_rel_type(owner: str, rel_type: str) -> str:
    return f"{upper_snake(owner)}_{rel_type}"
