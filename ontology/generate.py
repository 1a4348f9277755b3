"""Generate ``ontology/owl/cim.ttl`` from the ENTSO-E CGMES 2.4.15 profile schemas (RDFS, augmented).

Run as ``python -m ontology.generate`` (``--check`` compares instead of writing). The output is
deterministic: the same schemas always give the same bytes, and a test holds the checked-in file to it.

What the generator does with the schemas:

- classes from every profile are merged by name; ``rdfs:subClassOf`` gives the hierarchy;
- attributes typed by a CIM primitive or a CIMDatatype (``ActivePower`` with value/multiplier/unit)
  become float/int/bool/string/datetime attributes with their unit; those ranging over an enumeration
  become enum attributes with the enumeration's literals;
- of each association's two ends, the one marked ``cims:AssociationUsed Yes`` is the one files
  serialise: it becomes the association, and the other end's role name becomes its ``inverse_key``;
- keys (property keys, GraphQL fields, relationship types) are derived from the CIM names and must be
  unique along every class's ancestry; collisions are resolved by qualifying the later member with its
  owner's name, deterministically.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ontology.model import CIM16_NS, ENTSOE16_NS
from ontology.vocabulary import (
    ENUMERATION,
    GRAPHQL_NAME,
    HUB,
    P_ABSTRACT,
    P_DATATYPE,
    P_DOMAIN,
    P_INVERSE_KEY,
    P_KEY,
    P_MANY,
    P_PROFILE,
    P_REL_TYPE,
    P_UNIT,
    RESERVED_FIELDS,
    lower_first,
    qualified_key,
    qualified_rel_type,
    upper_snake,
)

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources" / "cgmes-2.4.15"
OUTPUT = HERE / "owl" / "cim.ttl"

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
CIMS = "http://iec.ch/TC57/1999/rdf-schema-extensions-19990926#"
UML = "http://iec.ch/TC57/NonStandard/UML#"

# Profile short names, in the order their descriptions take precedence when merging.
PROFILES: tuple[tuple[str, str], ...] = (
    ("EquipmentProfileCoreOperation", "EQ"),
    ("EquipmentProfileCoreShortCircuitOperation", "EQ"),
    ("EquipmentBoundaryProfile", "EQ_BD"),
    ("TopologyProfile", "TP"),
    ("TopologyBoundaryProfile", "TP_BD"),
    ("SteadyStateHypothesisProfile", "SSH"),
    ("StateVariablesProfile", "SV"),
    ("GeographicalLocationProfile", "GL"),
    ("DiagramLayoutProfile", "DL"),
    ("DynamicsProfile", "DY"),
)

PRIMITIVES = {
    "Float": "float",
    "Decimal": "float",
    "Integer": "int",
    "Boolean": "bool",
    "String": "string",
    "DateTime": "datetime",
    # CIM Date, MonthDay and Duration are not instants; they stay text.
    "Date": "string",
    "MonthDay": "string",
    "Duration": "string",
}

MULTIPLIER_PREFIX = {
    "none": "",
    "micro": "µ",
    "p": "p",
    "n": "n",
    "m": "m",
    "c": "c",
    "d": "d",
    "k": "k",
    "M": "M",
    "G": "G",
    "T": "T",
}


@dataclass
class _Desc:
    """One rdf:Description, with the values the generator needs."""

    ns: str
    name: str
    label: str = ""
    comment: str = ""
    types: set[str] = field(default_factory=set)
    stereotypes: set[str] = field(default_factory=set)
    sub_class_of: set[str] = field(default_factory=set)
    domain: str | None = None
    range: str | None = None
    data_type: str | None = None
    multiplicity: str | None = None
    inverse: str | None = None
    used: str | None = None
    fixed: str | None = None
    category: str | None = None
    profiles: set[str] = field(default_factory=set)


def _local(iri: str) -> tuple[str, str]:
    ns, _, name = iri.rpartition("#")
    return ns, name


def _text(el: etree._Element) -> str:
    return re.sub(r"\s+", " ", "".join(el.itertext())).strip()


def parse_profile(path: Path, profile: str) -> dict[str, _Desc]:
    """Every rdf:Description of one RDFS file, by local name."""
    root = etree.parse(str(path)).getroot()
    base = root.get("{http://www.w3.org/XML/1998/namespace}base") or CIM16_NS

    def resolve(ref: str) -> str:
        return base + ref if ref.startswith("#") else ref

    out: dict[str, _Desc] = {}
    for el in root.iterchildren(f"{{{RDF}}}Description"):
        about = el.get(f"{{{RDF}}}about")
        if about is None:
            continue
        ns, name = _local(resolve(about))
        desc = _Desc(ns=ns, name=name, profiles={profile})
        for child in el.iterchildren(tag=etree.Element):
            tag = child.tag
            ref = child.get(f"{{{RDF}}}resource")
            ref_name = _local(resolve(ref))[1] if ref else None
            if tag == f"{{{RDFS}}}label":
                desc.label = _text(child)
            elif tag == f"{{{RDFS}}}comment":
                desc.comment = _text(child)
            elif tag == f"{{{RDF}}}type" and ref:
                desc.types.add(resolve(ref))
            elif tag == f"{{{CIMS}}}stereotype":
                desc.stereotypes.add(ref_name if ref_name else _text(child))
            elif tag == f"{{{RDFS}}}subClassOf" and ref_name:
                desc.sub_class_of.add(ref_name)
            elif tag == f"{{{RDFS}}}domain":
                desc.domain = ref_name
            elif tag == f"{{{RDFS}}}range":
                desc.range = ref_name
            elif tag == f"{{{CIMS}}}dataType":
                desc.data_type = ref_name
            elif tag == f"{{{CIMS}}}multiplicity" and ref:
                desc.multiplicity = ref.rpartition("#")[2]
            elif tag == f"{{{CIMS}}}inverseRoleName":
                desc.inverse = ref_name
            elif tag == f"{{{CIMS}}}AssociationUsed":
                desc.used = _text(child)
            elif tag in (f"{{{CIMS}}}isFixed", f"{{{CIMS}}}isDefault"):
                desc.fixed = child.get(f"{{{RDFS}}}Literal") or _text(child)
            elif tag == f"{{{CIMS}}}belongsToCategory":
                desc.category = ref_name
        out[name] = desc
    return out


def _merge(target: _Desc, extra: _Desc) -> None:
    # The ENTSO-E extension namespace wins: that is how the files write these names.
    if extra.ns == ENTSOE16_NS:
        target.ns = ENTSOE16_NS
    for attr in (
        "label",
        "comment",
        "domain",
        "range",
        "data_type",
        "multiplicity",
        "inverse",
        "fixed",
        "category",
    ):
        if not getattr(target, attr) and getattr(extra, attr):
            setattr(target, attr, getattr(extra, attr))
    if extra.used == "Yes":
        target.used = "Yes"
    elif target.used is None:
        target.used = extra.used
    target.types |= extra.types
    target.stereotypes |= extra.stereotypes
    target.sub_class_of |= extra.sub_class_of
    target.profiles |= extra.profiles


def load_sources(sources: Path = SOURCES) -> dict[str, _Desc]:
    merged: dict[str, _Desc] = {}
    files = sorted(sources.glob("*.rdf"))
    ordered: list[tuple[Path, str]] = []
    for prefix, short in PROFILES:
        ordered.extend((f, short) for f in files if f.name.startswith(prefix + "RDFS"))
    missing = {f.name for f in files} - {f.name for f, _ in ordered}
    if missing:
        raise SystemExit(f"schema files of no known profile: {sorted(missing)}")
    for path, short in ordered:
        for name, desc in parse_profile(path, short).items():
            if name in merged:
                _merge(merged[name], desc)
            else:
                merged[name] = desc
    for desc in merged.values():
        # Some profiles declare ENTSO-E extensions in the CIM namespace with an "Entsoe" stereotype;
        # instance files write them in the extension namespace, so the ontology does too.
        if "Entsoe" in desc.stereotypes:
            desc.ns = ENTSOE16_NS
    return merged


# --- model ------------------------------------------------------------------------------------------


@dataclass
class GenAttribute:
    qname: str
    owner: str
    ns: str
    key: str
    datatype: str
    enum: str | None
    unit: str | None
    cim_datatype: str | None
    description: str
    profiles: set[str]


@dataclass
class GenAssociation:
    qname: str
    owner: str
    ns: str
    key: str
    rel_type: str
    target: str
    many: bool
    inverse_qname: str | None
    inverse_key: str
    description: str
    profiles: set[str]


@dataclass
class GenClass:
    name: str
    ns: str
    parents: list[str]
    abstract: bool
    description: str
    profiles: set[str]


@dataclass
class GenEnum:
    name: str
    ns: str
    description: str
    literals: dict[str, tuple[str, str]]  # literal -> (namespace, description)


@dataclass
class CimModel:
    classes: dict[str, GenClass]
    attributes: dict[str, GenAttribute]
    associations: dict[str, GenAssociation]
    enums: dict[str, GenEnum]
    notes: list[str]


def _kind(desc: _Desc) -> str:
    if "Primitive" in desc.stereotypes:
        return "primitive"
    if "CIMDatatype" in desc.stereotypes:
        return "datatype"
    if "enumeration" in desc.stereotypes:
        return "enumeration"
    return "class"


def _is_header(desc: _Desc) -> bool:
    """Profile-version header classes (EquipmentVersion, ...) describe the schema, not the grid."""
    return bool(desc.category and desc.category.endswith("Profile") and desc.name.endswith("Version"))


def _unit(descs: dict[str, _Desc], datatype: str) -> str | None:
    unit = descs.get(f"{datatype}.unit")
    mult = descs.get(f"{datatype}.multiplier")
    symbol = unit.fixed if unit is not None else None
    if symbol in (None, "none"):
        return "%" if datatype == "PerCent" else None
    prefix = MULTIPLIER_PREFIX.get(mult.fixed or "none", mult.fixed or "") if mult is not None else ""
    return f"{prefix}{symbol}"


def _value_type(descs: dict[str, _Desc], datatype: str, seen: frozenset[str] = frozenset()) -> str:
    if datatype in PRIMITIVES:
        return PRIMITIVES[datatype]
    value = descs.get(f"{datatype}.value")
    if value is None or value.data_type is None or datatype in seen:
        raise SystemExit(f"CIM datatype {datatype!r} has no resolvable value type")
    return _value_type(descs, value.data_type, seen | {datatype})


def build_model(descs: dict[str, _Desc]) -> CimModel:
    notes: list[str] = []
    classes: dict[str, GenClass] = {}
    enums: dict[str, GenEnum] = {}
    for desc in descs.values():
        if "http://www.w3.org/2000/01/rdf-schema#Class" not in desc.types or _is_header(desc):
            continue
        kind = _kind(desc)
        if kind == "class":
            classes[desc.name] = GenClass(
                name=desc.name,
                ns=desc.ns,
                parents=sorted(desc.sub_class_of),
                abstract="concrete" not in desc.stereotypes,
                description=desc.comment,
                profiles=desc.profiles,
            )
        elif kind == "enumeration":
            enums[desc.name] = GenEnum(name=desc.name, ns=desc.ns, description=desc.comment, literals={})
    for desc in descs.values():
        for t in desc.types:
            enum_name = _local(t)[1]
            if enum_name in enums and desc.name.startswith(enum_name + "."):
                enums[enum_name].literals[desc.name.split(".", 1)[1]] = (enums[enum_name].ns, desc.comment)
    for cls in classes.values():
        for parent in cls.parents:
            if parent not in classes:
                raise SystemExit(f"class {cls.name!r} has parent {parent!r} that no schema defines")
        if len(cls.parents) > 1:
            notes.append(f"{cls.name} has several parents: {cls.parents}")

    attributes: dict[str, GenAttribute] = {}
    associations: dict[str, GenAssociation] = {}
    for desc in descs.values():
        if "." not in desc.name or desc.domain not in classes:
            continue
        owner, member = desc.name.split(".", 1)
        if owner != desc.domain:
            raise SystemExit(f"{desc.name!r} declares domain {desc.domain!r}")
        if "attribute" in desc.stereotypes:
            if desc.data_type is not None:
                datatype = _value_type(descs, desc.data_type)
                enum = None
                unit = None if desc.data_type in PRIMITIVES else _unit(descs, desc.data_type)
                cim_datatype = desc.data_type
            elif desc.range in enums:
                datatype, enum, unit, cim_datatype = "enum", desc.range, None, None
            else:
                raise SystemExit(f"attribute {desc.name!r} has neither a datatype nor an enumeration range")
            attributes[desc.name] = GenAttribute(
                qname=desc.name,
                owner=owner,
                ns=desc.ns,
                key=member,
                datatype=datatype,
                enum=enum,
                unit=unit,
                cim_datatype=cim_datatype,
                description=desc.comment,
                profiles=desc.profiles,
            )
        elif desc.used is not None:
            if desc.used != "Yes":
                continue
            if desc.range not in classes:
                raise SystemExit(f"association {desc.name!r} targets {desc.range!r}, which is no class")
            inverse = descs.get(desc.inverse) if desc.inverse else None
            if inverse is not None and inverse.used == "Yes":
                notes.append(f"both ends of {desc.name} / {inverse.name} are serialised")
            mult = desc.multiplicity or "M:0..1"
            inverse_role = inverse.name.split(".", 1)[1] if inverse is not None else owner + "s"
            associations[desc.name] = GenAssociation(
                qname=desc.name,
                owner=owner,
                ns=desc.ns,
                key=lower_first(member),
                rel_type=upper_snake(member),
                target=desc.range,
                many=mult.endswith("n") or mult.endswith("2"),
                inverse_qname=inverse.name if inverse is not None else None,
                inverse_key=lower_first(inverse_role),
                description=desc.comment,
                profiles=desc.profiles,
            )
    model = CimModel(
        classes=classes, attributes=attributes, associations=associations, enums=enums, notes=notes
    )
    resolve_collisions(model)
    return model


# --- keys -------------------------------------------------------------------------------------------


def _ancestry(classes: dict[str, list[str]], name: str) -> list[str]:
    result = [name]
    for parent in classes[name]:
        for anc in _ancestry(classes, parent):
            if anc not in result:
                result.append(anc)
    return result


def resolve_collisions(model: CimModel) -> None:
    """Make keys and relationship types unique along every class's ancestry, by qualifying with owners."""
    parents = {name: cls.parents for name, cls in model.classes.items()}
    ancestry = {name: _ancestry(parents, name) for name in parents}
    order = {"attr": 0, "assoc": 1, "inv": 2}
    for _round in range(20):
        changed = False
        for name in sorted(model.classes):
            ancs = ancestry[name]
            depth = {anc: i for i, anc in enumerate(ancs)}
            # (key) -> [(kind, qname, declaring class)]
            fields: dict[str, list[tuple[str, str, str]]] = {}
            rels: dict[str, list[str]] = {}
            for a in model.attributes.values():
                if a.owner in depth:
                    fields.setdefault(a.key, []).append(("attr", a.qname, a.owner))
            for s in model.associations.values():
                if s.owner in depth:
                    fields.setdefault(s.key, []).append(("assoc", s.qname, s.owner))
                    rels.setdefault(s.rel_type, []).append(s.qname)
                if s.target in depth:
                    fields.setdefault(s.inverse_key, []).append(("inv", s.qname, s.target))
            for key, items in sorted(fields.items()):
                if len(items) < 2 and key not in RESERVED_FIELDS:
                    continue
                items.sort(key=lambda it: (-depth[it[2]], order[it[0]], it[1]))
                losers = items if key in RESERVED_FIELDS else items[1:]
                for kind, qname, _declared in losers:
                    changed = True
                    if kind == "attr":
                        attr = model.attributes[qname]
                        attr.key = qualified_key(attr.owner, attr.key)
                    elif kind == "assoc":
                        assoc = model.associations[qname]
                        assoc.key = qualified_key(assoc.owner, assoc.key)
                    else:
                        assoc = model.associations[qname]
                        assoc.inverse_key = qualified_key(assoc.owner, assoc.inverse_key)
                    model.notes.append(f"key {key!r} collides on {name}: {qname} ({kind}) qualified")
            for rel, qnames in sorted(rels.items()):
                if len(qnames) < 2:
                    continue
                qnames.sort(key=lambda q: (-depth[model.associations[q].owner], q))
                for qname in qnames[1:]:
                    changed = True
                    assoc = model.associations[qname]
                    assoc.rel_type = qualified_rel_type(assoc.owner, assoc.rel_type)
                    model.notes.append(f"relationship type {rel!r} collides on {name}: {qname} qualified")
        if not changed:
            break
    else:
        raise SystemExit("key collisions did not settle")
    for a in model.attributes.values():
        _check_name(a.qname, a.key)
    for s in model.associations.values():
        _check_name(s.qname, s.key)
        _check_name(s.qname, s.inverse_key)
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", s.rel_type):
            raise SystemExit(f"relationship type {s.rel_type!r} of {s.qname!r} is not UPPER_SNAKE")


def _check_name(qname: str, key: str) -> None:
    if not GRAPHQL_NAME.match(key):
        raise SystemExit(f"key {key!r} of {qname!r} is not a GraphQL name that avoids a leading '_'")


# --- Turtle -----------------------------------------------------------------------------------------


PREFIXES = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "hub": HUB,
    "cim": CIM16_NS + "#",
    "entsoe": ENTSOE16_NS + "#",
}
_PREFIX_OF = {CIM16_NS: "cim", ENTSOE16_NS: "entsoe"}
XSD_OF = {
    "float": "xsd:double",
    "int": "xsd:integer",
    "bool": "xsd:boolean",
    "string": "xsd:string",
    "datetime": "xsd:dateTime",
}
_SAFE_LOCAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*[A-Za-z0-9_\-]$|^[A-Za-z_]$")


def term(ns: str, name: str) -> str:
    prefix = _PREFIX_OF.get(ns)
    if prefix and _SAFE_LOCAL.match(name):
        return f"{prefix}:{name}"
    return f"<{ns}#{name}>"


def literal(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _block(subject: str, pairs: Iterable[tuple[str, str]]) -> str:
    lines = [f"{p} {o}" for p, o in pairs]
    return subject + " " + " ;\n    ".join(lines) + " .\n"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _profiles(profiles: set[str]) -> list[tuple[str, str]]:
    return [("hub:" + P_PROFILE, literal(p)) for p in sorted(profiles)]


def render(model: CimModel) -> str:
    out: list[str] = [
        "# GENERATED by `python -m ontology.generate` from the ENTSO-E CGMES 2.4.15 profile schemas in\n",
        "# ontology/sources/cgmes-2.4.15/ (see its README for provenance). Do not edit by hand.\n",
    ]
    out.extend(f"@prefix {p}: <{iri}> .\n" for p, iri in PREFIXES.items())
    out.append("\n<https://w3id.org/energy-hub/cim> a owl:Ontology ;\n")
    out.append('    rdfs:label "CIM classes of CGMES 2.4.15 (EQ, EQ_BD, TP, TP_BD, SSH, SV, GL, DL, DY)" ;\n')
    out.append(
        '    rdfs:comment "Generated from the ENTSO-E CGMES 2.4.15 RDFS profiles. Credit: ENTSO-E." .\n'
    )
    out.append("\n# --- classes ---\n\n")
    for cls in sorted(model.classes.values(), key=lambda c: c.name):
        pairs = [("a", "owl:Class"), ("rdfs:label", literal(cls.name))]
        pairs += [("rdfs:subClassOf", term(model.classes[p].ns, p)) for p in cls.parents]
        if cls.description:
            pairs.append(("rdfs:comment", literal(cls.description)))
        pairs += [("hub:" + P_DOMAIN, literal("Electricity")), ("hub:" + P_ABSTRACT, _bool(cls.abstract))]
        pairs += _profiles(cls.profiles)
        out.append(_block(term(cls.ns, cls.name), pairs))
    out.append("\n# --- enumerations ---\n\n")
    for enum in sorted(model.enums.values(), key=lambda e: e.name):
        pairs = [("a", "owl:Class, hub:" + ENUMERATION), ("rdfs:label", literal(enum.name))]
        if enum.description:
            pairs.append(("rdfs:comment", literal(enum.description)))
        out.append(_block(term(enum.ns, enum.name), pairs))
        for lit, (ns, desc) in sorted(enum.literals.items()):
            lpairs = [("a", f"owl:NamedIndividual, {term(enum.ns, enum.name)}"), ("rdfs:label", literal(lit))]
            if desc:
                lpairs.append(("rdfs:comment", literal(desc)))
            out.append(_block(term(ns, f"{enum.name}.{lit}"), lpairs))
    out.append("\n# --- attributes ---\n\n")
    for attr in sorted(model.attributes.values(), key=lambda a: a.qname):
        owner = model.classes[attr.owner]
        if attr.enum is not None:
            enum = model.enums[attr.enum]
            pairs = [
                ("a", "owl:ObjectProperty, owl:FunctionalProperty"),
                ("rdfs:range", term(enum.ns, enum.name)),
            ]
        else:
            pairs = [
                ("a", "owl:DatatypeProperty, owl:FunctionalProperty"),
                ("rdfs:range", XSD_OF[attr.datatype]),
            ]
        pairs += [("rdfs:label", literal(attr.qname)), ("rdfs:domain", term(owner.ns, owner.name))]
        if attr.description:
            pairs.append(("rdfs:comment", literal(attr.description)))
        pairs += [("hub:" + P_KEY, literal(attr.key)), ("hub:" + P_DATATYPE, literal(attr.datatype))]
        if attr.unit:
            pairs.append(("hub:" + P_UNIT, literal(attr.unit)))
        if attr.cim_datatype:
            pairs.append(("hub:cimDatatype", literal(attr.cim_datatype)))
        pairs += _profiles(attr.profiles)
        out.append(_block(term(attr.ns, attr.qname), pairs))
    out.append("\n# --- associations (the serialised end; the other end is its owl:inverseOf) ---\n\n")
    for assoc in sorted(model.associations.values(), key=lambda a: a.qname):
        owner, target = model.classes[assoc.owner], model.classes[assoc.target]
        kinds = "owl:ObjectProperty" if assoc.many else "owl:ObjectProperty, owl:FunctionalProperty"
        pairs = [
            ("a", kinds),
            ("rdfs:label", literal(assoc.qname)),
            ("rdfs:domain", term(owner.ns, owner.name)),
            ("rdfs:range", term(target.ns, target.name)),
        ]
        if assoc.inverse_qname:
            pairs.append(("owl:inverseOf", term(target.ns, assoc.inverse_qname)))
        if assoc.description:
            pairs.append(("rdfs:comment", literal(assoc.description)))
        pairs += [
            ("hub:" + P_KEY, literal(assoc.key)),
            ("hub:" + P_REL_TYPE, literal(assoc.rel_type)),
            ("hub:" + P_INVERSE_KEY, literal(assoc.inverse_key)),
            ("hub:" + P_MANY, _bool(assoc.many)),
        ]
        pairs += _profiles(assoc.profiles)
        out.append(_block(term(assoc.ns, assoc.qname), pairs))
    return "".join(out)


def generate(sources: Path = SOURCES) -> tuple[str, CimModel]:
    model = build_model(load_sources(sources))
    return render(model), model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ontology.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if cim.ttl differs from a fresh run")
    parser.add_argument("--verbose", action="store_true", help="print the collisions resolved")
    args = parser.parse_args(argv)
    text, model = generate()
    if args.verbose:
        for note in model.notes:
            print(note)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python -m ontology.generate", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(
        f"wrote {OUTPUT}: {len(model.classes)} classes, {len(model.attributes)} attributes, "
        f"{len(model.associations)} associations, {len(model.enums)} enumerations"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
