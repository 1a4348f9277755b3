"""The data catalogue: every producer stream with a data contract is a DCAT 3 data product, at ``/catalog``.

Generated with rdflib from the contracts (:mod:`hub.contracts`, ``settings.contracts_dir``): one
``dcat:Catalog`` and, per contract, one ``dcat:Dataset`` with its publisher (the producer's organisation),
contact point (the contract's owner and contacts), licence, access rights (the EU access-right authority
table's ``PUBLIC`` / ``RESTRICTED`` / ``NON_PUBLIC`` for Open Energy's sensitivity classes, and the class
itself as a rights statement), accrual periodicity and temporal resolution (the contract's update
frequency), version, ``dct:conformsTo`` the contract and the ontology namespaces of its classes, and two
distributions: its GraphQL view and its change feed. The contract itself is served at
``/catalog/contracts/<producer>`` (ODCS YAML).

Answers are JSON-LD or Turtle, by content negotiation (``Accept``) or ``?format=jsonld|turtle``. The
caller is identified as for every other route (:mod:`hubql.callers`); a product whose ``metadataLabel``
the caller does not satisfy is absent, from the catalogue and from ``/catalog/contracts``, exactly as one
that does not exist (the same 404).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, RDF, RDFS, XSD

from hub.caller import Caller
from hub.contracts import Contract, load_contracts
from hub.settings import Settings
from hubql.callers import RequestCaller
from ontology.model import CIM16_NS, GAS_NS, HUB_NS, Ontology

DCAT: Final = Namespace("http://www.w3.org/ns/dcat#")
VCARD: Final = Namespace("http://www.w3.org/2006/vcard/ns#")
HUB: Final = Namespace(HUB_NS + "#")
ACCESS_RIGHT: Final = Namespace("http://publications.europa.eu/resource/authority/access-right/")
FREQUENCY: Final = Namespace("http://publications.europa.eu/resource/authority/frequency/")
FILE_TYPE: Final = Namespace("http://publications.europa.eu/resource/authority/file-type/")
# Open Energy's sensitivity classes and the EU access right each amounts to.
ACCESS_RIGHTS: Final[dict[str, str]] = {
    "OE-O": "PUBLIC",
    "OE-SA": "RESTRICTED",
    "OE-SB": "RESTRICTED",
    "OE-SP": "RESTRICTED",
    "OE-C": "NON_PUBLIC",
}
SENSITIVITY_NAMES: Final[dict[str, str]] = {
    "OE-O": "Open",
    "OE-SA": "Shared: any registered user",
    "OE-SB": "Shared: users meeting conditions",
    "OE-SP": "Shared: personal data",
    "OE-C": "Closed",
}
# Update frequencies the EU frequency authority table names, in seconds.
FREQUENCIES: Final[dict[float, str]] = {
    60: "1MIN",
    300: "5MIN",
    600: "10MIN",
    900: "15MIN",
    1800: "30MIN",
    3600: "HOURLY",
    86400: "DAILY",
    7 * 86400: "WEEKLY",
}
DOMAIN_NAMESPACES: Final[dict[str, str]] = {"Electricity": CIM16_NS, "Gas": GAS_NS}
TURTLE: Final = "text/turtle"
JSON_LD: Final = "application/ld+json"
# What each media type a client may ask for is answered with.
MEDIA_TYPES: Final[dict[str, str]] = {
    TURTLE: TURTLE,
    "application/x-turtle": TURTLE,
    JSON_LD: JSON_LD,
    "application/json": JSON_LD,
}
FORMATS: Final[dict[str, str]] = {"turtle": TURTLE, "ttl": TURTLE, "jsonld": JSON_LD, "json-ld": JSON_LD}
CONTEXT: Final[dict[str, str]] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
    "hub": str(HUB),
}

router = APIRouter()


class Catalogue:
    """The contracts the catalogue describes, read once when the API starts."""

    def __init__(self, settings: Settings, ontology: Ontology) -> None:
        self.settings = settings
        self.ontology = ontology
        folder: Path | None = settings.contracts_dir
        self.contracts: Mapping[str, Contract] = load_contracts(folder) if folder is not None else {}

    def visible(self, caller: Caller) -> list[Contract]:
        """The products ``caller`` may know exist, by producer id."""
        auths = caller.authorizations
        return [c for _, c in sorted(self.contracts.items()) if c.metadata_visible(auths)]

    def graph(self, caller: Caller, base: str) -> Graph:
        g = Graph(bind_namespaces="none")
        for prefix, ns in CONTEXT.items():
            g.bind(prefix, Namespace(ns))
        catalog = URIRef(f"{base}/catalog")
        g.add((catalog, RDF.type, DCAT.Catalog))
        g.add((catalog, DCTERMS.title, Literal("Energy hub data products", lang="en")))
        g.add((catalog, DCTERMS.description, Literal(_CATALOG_TEXT, lang="en")))
        service = URIRef(f"{base}/graphql")
        g.add((catalog, DCAT.service, service))
        g.add((service, RDF.type, DCAT.DataService))
        g.add((service, DCTERMS.title, Literal("Energy hub GraphQL API", lang="en")))
        g.add((service, DCAT.endpointURL, service))
        g.add((service, DCTERMS.conformsTo, URIRef("https://spec.graphql.org/")))
        for contract in self.visible(caller):
            dataset = self._dataset(g, contract, base, service)
            g.add((catalog, DCAT.dataset, dataset))
            g.add((service, DCAT.servesDataset, dataset))
        return g

    def _dataset(self, g: Graph, c: Contract, base: str, service: URIRef) -> URIRef:
        ds = URIRef(f"{base}/catalog/datasets/{c.producer}")
        contract_iri = URIRef(f"{base}/catalog/contracts/{c.producer}")
        g.add((ds, RDF.type, DCAT.Dataset))
        g.add((ds, DCTERMS.identifier, Literal(c.id)))
        g.add((ds, DCTERMS.title, Literal(c.name, lang="en")))
        g.add((ds, DCTERMS.description, Literal(c.purpose, lang="en")))
        g.add((ds, HUB.limitations, Literal(c.limitations, lang="en")))
        g.add((ds, DCAT.version, Literal(c.version)))
        g.add((ds, HUB.producer, Literal(c.producer)))
        publisher = URIRef(f"{base}/catalog/publishers/{c.document.tenant or c.producer}")
        g.add((ds, DCTERMS.publisher, publisher))
        g.add((publisher, RDF.type, FOAF.Agent))
        g.add((publisher, FOAF.name, Literal(c.document.tenant or c.producer)))
        contact = BNode()
        g.add((ds, DCAT.contactPoint, contact))
        g.add((contact, RDF.type, VCARD.Organization))
        g.add((contact, VCARD.fn, Literal(c.owner)))
        for url in c.contacts:
            g.add((contact, VCARD.hasEmail if url.startswith("mailto:") else VCARD.hasURL, URIRef(url)))
        licence = URIRef(c.licence)
        g.add((ds, DCTERMS.license, licence))
        g.add((licence, RDF.type, DCTERMS.LicenseDocument))
        g.add((ds, DCTERMS.accessRights, ACCESS_RIGHT[ACCESS_RIGHTS.get(c.sensitivity, "NON_PUBLIC")]))
        rights = BNode()
        g.add((ds, DCTERMS.rights, rights))
        g.add((rights, RDF.type, DCTERMS.RightsStatement))
        g.add((rights, DCTERMS.identifier, Literal(c.sensitivity)))
        name = SENSITIVITY_NAMES.get(c.sensitivity, c.sensitivity)
        g.add(
            (
                rights,
                RDFS.label,
                Literal(f"Open Energy sensitivity class {c.sensitivity} ({name})", lang="en"),
            )
        )
        g.add((ds, HUB.sensitivityClass, Literal(c.sensitivity)))
        frequency = FREQUENCIES.get(c.frequency.seconds)
        if frequency is not None:
            g.add((ds, DCTERMS.accrualPeriodicity, FREQUENCY[frequency]))
        g.add((ds, DCAT.temporalResolution, Literal(_duration(c.frequency.seconds), datatype=XSD.duration)))
        g.add((ds, HUB.freshness, Literal(_duration(c.freshness.seconds), datatype=XSD.duration)))
        g.add((ds, DCTERMS.conformsTo, contract_iri))
        g.add((contract_iri, RDF.type, DCTERMS.Standard))
        g.add((contract_iri, DCTERMS.title, Literal(f"Data contract {c.id} {c.version} (ODCS)", lang="en")))
        domains = set()
        for cls in c.classes:
            g.add((ds, DCAT.keyword, Literal(cls)))
            if cls in self.ontology.classes:
                domains.add(self.ontology.domain(cls))
        for domain in sorted(domains):
            namespace = DOMAIN_NAMESPACES.get(domain)
            if namespace is not None:
                g.add((ds, DCTERMS.conformsTo, URIRef(namespace)))
        if c.document.domain:
            g.add((ds, DCAT.theme, Literal(c.document.domain)))
        view = URIRef(f"{base}/catalog/datasets/{c.producer}/graphql")
        g.add((ds, DCAT.distribution, view))
        g.add((view, RDF.type, DCAT.Distribution))
        g.add((view, DCTERMS.title, Literal("GraphQL view", lang="en")))
        g.add((view, DCTERMS.description, Literal(_VIEW_TEXT.format(producer=c.producer), lang="en")))
        g.add((view, DCAT.accessURL, service))
        g.add((view, DCAT.accessService, service))
        g.add((view, DCAT.mediaType, URIRef("https://www.iana.org/assignments/media-types/application/json")))
        g.add((view, DCTERMS.format, FILE_TYPE.JSON))
        g.add((view, DCTERMS.license, licence))
        feed = URIRef(f"{base}/catalog/datasets/{c.producer}/changes")
        g.add((ds, DCAT.distribution, feed))
        g.add((feed, RDF.type, DCAT.Distribution))
        g.add((feed, DCTERMS.title, Literal("Change feed", lang="en")))
        g.add((feed, DCTERMS.description, Literal(_FEED_TEXT.format(producer=c.producer), lang="en")))
        g.add((feed, DCAT.accessURL, URIRef(f"{base.replace('http', 'ws', 1)}/graphql")))
        g.add((feed, HUB.kafkaTopic, Literal(self.settings.changes_topic)))
        g.add((feed, DCTERMS.format, FILE_TYPE.JSON))
        g.add((feed, DCTERMS.license, licence))
        return ds


_CATALOG_TEXT: Final = (
    "Every producer stream of the hub with a data contract: who publishes it, under what licence and "
    "sensitivity, how often it is updated and where to read it. Each caller sees the products it may know of."
)
_VIEW_TEXT: Final = (
    "The producer's objects in the hub's graph, queried over GraphQL (each object names its producer, "
    "here {producer!r}); each caller sees the objects its clearance allows."
)
_FEED_TEXT: Final = (
    "Changes to the producer's objects ({producer!r}) as they are committed: GraphQL subscriptions over "
    "a websocket, fed from the hub's Kafka change topic; each caller receives the changes it may see."
)


def _duration(seconds: float) -> str:
    """An xsd:duration such as ``PT15M`` or ``P1D``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "") if whole else "PT0S"


def negotiate(accept: str | None, format_: str | None) -> str | None:
    """The media type to answer with: ``?format=`` first, then the best ``Accept`` entry we serve (JSON-LD
    for ``*/*`` or no header); None when the client accepts none of ours."""
    if format_ is not None:
        return FORMATS.get(format_.lower())
    if not accept:
        return JSON_LD
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        answer = MEDIA_TYPES.get(media) or (JSON_LD if media in ("*/*", "application/*") else None)
        if media == "text/*":
            answer = TURTLE
        if answer is not None and q > 0:
            ranked.append((-q, index, answer))
    return min(ranked)[2] if ranked else None


def _catalogue(request: Request) -> Catalogue:
    found: Catalogue = request.app.state.catalogue
    return found


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _private(body: str | bytes, media_type: str) -> Response:
    # What the answer holds depends on who asks: no shared cache may keep it.
    headers = {"Cache-Control": "private, no-store", "Vary": "Accept, Authorization"}
    return Response(body, media_type=media_type, headers=headers)


@router.get("/catalog")
async def catalog(request: Request, identified: RequestCaller, format: str | None = None) -> Response:
    """The DCAT catalogue of the data products the caller may know of."""
    media = negotiate(request.headers.get("accept"), format)
    if media is None:
        raise HTTPException(406, detail=f"the catalogue is served as {JSON_LD} or {TURTLE}")
    assert identified is not None  # HTTP: the dependency names the caller or answers 401
    g = _catalogue(request).graph(identified, _base(request))
    if media == TURTLE:
        return _private(g.serialize(format="turtle"), TURTLE)
    return _private(g.serialize(format="json-ld", context=CONTEXT, auto_compact=True), JSON_LD)


@router.get("/catalog/contracts/{producer}")
async def contract(request: Request, producer: str, identified: RequestCaller) -> Response:
    """A product's data contract (ODCS YAML); 404 alike for a product that is missing or hidden."""
    assert identified is not None
    found = _catalogue(request).contracts.get(producer)
    if found is None or not found.metadata_visible(identified.authorizations):
        raise HTTPException(404, detail="Not Found")
    text = yaml.safe_dump(
        found.document.model_dump(exclude_none=True, by_alias=True), sort_keys=False, allow_unicode=True
    )
    return _private(text, "application/yaml")
