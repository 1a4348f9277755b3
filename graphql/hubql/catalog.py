"""The data catalogue: every producer stream with a data contract is a DCAT 3 data product, at ``/catalog``.

Generated with rdflib from the contracts (:mod:`hub.contracts`, ``settings.contracts_dir``): one
``dcat:Catalog`` and, per contract, one ``dcat:Dataset`` with its publisher (the producer's organisation),
contact point (the contract's owner and contacts), licence, access rights (the EU access-right authority
table's ``PUBLIC`` / ``RESTRICTED`` / ``NON_PUBLIC`` for Open Energy's sensitivity classes, and the class
itself as a rights statement), accrual periodicity and temporal resolution (the contract's update
frequency), version, ``dct:conformsTo`` the contract and the ontology namespaces of its classes, and two
distributions: its GraphQL view and its change feed. What the data says is measured per request through
the caller's guard (:mod:`hub.quality`): ``dct:modified``, temporal coverage (``dct:temporal``, the
span of the visible objects' event times), spatial coverage (``dct:spatial`` with a ``dcat:bbox``) and the
quality figures as DQV measurements (``dqv:hasQualityMeasurement``), consumers' open data-quality flags
among them (``hub:openFlags``, counted as GraphQL's ``quality.openFlags``). The contract itself is served at
``/catalog/contracts/<producer>`` (ODCS YAML).

Answers are JSON-LD or Turtle, by content negotiation (``Accept``) or ``?format=jsonld|turtle``. The
caller is identified as for every other route (:mod:`hubql.callers`); a product whose ``metadataLabel``
the caller does not satisfy is absent, from the catalogue and from ``/catalog/contracts``, exactly as one
that does not exist (the same 404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

import yaml
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from hub.caller import Caller
from hub.data_products import DataProduct, DataProducts, iso_duration
from hub.quality import ProductQuality
from hub.settings import Settings
from hubql.callers import RequestCaller
from ontology.model import HUB_NS

DCAT: Final = Namespace("http://www.w3.org/ns/dcat#")
VCARD: Final = Namespace("http://www.w3.org/2006/vcard/ns#")
HUB: Final = Namespace(HUB_NS + "#")
ACCESS_RIGHT: Final = Namespace("http://publications.europa.eu/resource/authority/access-right/")
FREQUENCY: Final = Namespace("http://publications.europa.eu/resource/authority/frequency/")
FILE_TYPE: Final = Namespace("http://publications.europa.eu/resource/authority/file-type/")
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
DQV: Final = Namespace("http://www.w3.org/ns/dqv#")
GSP: Final = Namespace("http://www.opengis.net/ont/geosparql#")
# The quality metrics the catalogue states (hub/quality.py): what each measures, and its value's type.
METRICS: Final[dict[str, tuple[str, URIRef]]] = {
    "eventsPerMinute": ("Events applied per minute over the last window.", XSD.double),
    "freshnessP50": ("Median seconds from an event's time to its commit, over the last window.", XSD.double),
    "freshnessP99": (
        "99th percentile of seconds from event time to commit, over the last window.",
        XSD.double,
    ),
    "deadLettersPerMinute": ("Events dead-lettered per minute over the last window.", XSD.double),
    "deadLetterRate": ("Dead-lettered share of the events of the last window.", XSD.double),
    "objectCount": ("Objects of the product (of one class, when hub:className says).", XSD.integer),
    "completeness": ("Share of a class's objects that carry a promised attribute.", XSD.double),
    "deadLetterReason": ("Dead letters of the last window with one reason (hub:reason).", XSD.integer),
    "openFlags": (
        "Consumers' data-quality flags still open or acknowledged: on the product, and on objects the "
        "caller may see.",
        XSD.integer,
    ),
}
# A product's quality as the asking caller may be told it (hubql.context.ApiServices.quality).
Measure = Callable[[DataProduct], Awaitable[ProductQuality]]
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
    "dqv": str(DQV),
    "skos": str(SKOS),
    "gsp": str(GSP),
}

router = APIRouter()


class Catalogue:
    """The DCAT view of the data products (:mod:`hub.data_products`)."""

    def __init__(self, settings: Settings, products: DataProducts) -> None:
        self.settings = settings
        self.products = products

    async def graph(self, caller: Caller, base: str, measure: Measure) -> Graph:
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
        measured = False
        for product in self.products.visible(caller):
            dataset = self._dataset(g, product, base, service)
            g.add((catalog, DCAT.dataset, dataset))
            g.add((service, DCAT.servesDataset, dataset))
            self._quality(g, dataset, await measure(product))
            measured = True
        if measured:
            for metric, (label, datatype) in METRICS.items():
                g.add((HUB[metric], RDF.type, DQV.Metric))
                g.add((HUB[metric], SKOS.definition, Literal(label, lang="en")))
                g.add((HUB[metric], DQV.expectedDataType, datatype))
        return g

    def _quality(self, g: Graph, ds: URIRef, pq: ProductQuality) -> None:
        """What the data says of the dataset, as the caller may see it: last update, temporal and spatial
        coverage, and the quality figures as DQV measurements."""
        q = pq.measured
        if q.last_update is not None:
            g.add((ds, DCTERMS.modified, Literal(q.last_update, datatype=XSD.dateTime)))
        start, end = q.coverage.start, q.coverage.end
        if start is not None and end is not None:
            period = BNode()
            g.add((ds, DCTERMS.temporal, period))
            g.add((period, RDF.type, DCTERMS.PeriodOfTime))
            g.add((period, DCAT.startDate, Literal(start, datatype=XSD.dateTime)))
            g.add((period, DCAT.endDate, Literal(end, datatype=XSD.dateTime)))
        box = q.coverage.bbox
        if box is not None:
            west, south, east, north = box
            place = BNode()
            g.add((ds, DCTERMS.spatial, place))
            g.add((place, RDF.type, DCTERMS.Location))
            wkt = f"POLYGON(({west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}))"
            g.add((place, DCAT.bbox, Literal(wkt, datatype=GSP.wktLiteral)))
        figures: list[tuple[str, float | int | None, dict[URIRef, str]]] = [
            ("eventsPerMinute", q.events_per_minute, {}),
            ("freshnessP50", q.freshness_p50_s, {}),
            ("freshnessP99", q.freshness_p99_s, {}),
            ("deadLettersPerMinute", q.dead_letters_per_minute, {}),
            ("deadLetterRate", q.dead_letter_rate, {}),
            ("objectCount", q.objects, {}),
            *(("objectCount", c.count, {HUB.className: c.class_name}) for c in q.counts),
            *(
                ("completeness", c.ratio, {HUB.className: c.class_name, HUB.attribute: c.attribute})
                for c in q.completeness
            ),
            *(("deadLetterReason", r.count, {HUB.reason: r.reason}) for r in q.top_reasons),
            ("openFlags", pq.open_flags, {}),
        ]
        for metric, value, about in figures:
            if value is None:
                continue
            m = BNode()
            g.add((ds, DQV.hasQualityMeasurement, m))
            g.add((m, RDF.type, DQV.QualityMeasurement))
            g.add((m, DQV.computedOn, ds))
            g.add((m, DQV.isMeasurementOf, HUB[metric]))
            g.add((m, DQV.value, Literal(value, datatype=METRICS[metric][1])))
            for key, text in about.items():
                g.add((m, key, Literal(text)))

    def _dataset(self, g: Graph, product: DataProduct, base: str, service: URIRef) -> URIRef:
        c = product.contract
        ds = URIRef(f"{base}/catalog/datasets/{c.producer}")
        contract_iri = URIRef(product.contract_url(base))
        g.add((ds, RDF.type, DCAT.Dataset))
        g.add((ds, DCTERMS.identifier, Literal(c.id)))
        g.add((ds, DCTERMS.title, Literal(c.name, lang="en")))
        g.add((ds, DCTERMS.description, Literal(c.purpose, lang="en")))
        g.add((ds, HUB.limitations, Literal(c.limitations, lang="en")))
        g.add((ds, DCAT.version, Literal(c.version)))
        g.add((ds, HUB.producer, Literal(c.producer)))
        publisher = URIRef(f"{base}/catalog/publishers/{product.publisher}")
        g.add((ds, DCTERMS.publisher, publisher))
        g.add((publisher, RDF.type, FOAF.Agent))
        g.add((publisher, FOAF.name, Literal(product.publisher)))
        contact = BNode()
        g.add((ds, DCAT.contactPoint, contact))
        g.add((contact, RDF.type, VCARD.Organization))
        g.add((contact, VCARD.fn, Literal(c.owner)))
        for url in c.contacts:
            g.add((contact, VCARD.hasEmail if url.startswith("mailto:") else VCARD.hasURL, URIRef(url)))
        licence = URIRef(c.licence)
        g.add((ds, DCTERMS.license, licence))
        g.add((licence, RDF.type, DCTERMS.LicenseDocument))
        g.add((ds, DCTERMS.accessRights, ACCESS_RIGHT[product.access_right]))
        rights = BNode()
        g.add((ds, DCTERMS.rights, rights))
        g.add((rights, RDF.type, DCTERMS.RightsStatement))
        g.add((rights, DCTERMS.identifier, Literal(c.sensitivity)))
        name = product.sensitivity_name
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
        g.add(
            (ds, DCAT.temporalResolution, Literal(iso_duration(c.frequency.seconds), datatype=XSD.duration))
        )
        g.add((ds, HUB.freshness, Literal(iso_duration(c.freshness.seconds), datatype=XSD.duration)))
        g.add((ds, DCTERMS.conformsTo, contract_iri))
        g.add((contract_iri, RDF.type, DCTERMS.Standard))
        g.add((contract_iri, DCTERMS.title, Literal(f"Data contract {c.id} {c.version} (ODCS)", lang="en")))
        for cls in product.classes:
            g.add((ds, DCAT.keyword, Literal(cls)))
        for namespace in product.namespaces:
            g.add((ds, DCTERMS.conformsTo, URIRef(namespace)))
        if c.document.domain:
            g.add((ds, DCAT.theme, Literal(c.document.domain)))
        for dist in product.distributions(base):
            if dist.key == "contract":
                continue  # the contract is what the dataset conforms to (above), not a distribution
            node = URIRef(f"{base}/catalog/datasets/{c.producer}/{dist.key}")
            g.add((ds, DCAT.distribution, node))
            g.add((node, RDF.type, DCAT.Distribution))
            g.add((node, DCTERMS.title, Literal(dist.title, lang="en")))
            g.add((node, DCTERMS.description, Literal(dist.description, lang="en")))
            g.add((node, DCAT.accessURL, URIRef(dist.url)))
            g.add((node, DCTERMS.format, FILE_TYPE[dist.format]))
            g.add((node, DCTERMS.license, licence))
            if dist.key == "graphql":
                g.add((node, DCAT.accessService, service))
                g.add(
                    (
                        node,
                        DCAT.mediaType,
                        URIRef(f"https://www.iana.org/assignments/media-types/{dist.media_type}"),
                    )
                )
            else:
                g.add((node, HUB.kafkaTopic, Literal(self.settings.changes_topic)))
        return ds


_CATALOG_TEXT: Final = (
    "Every producer stream of the hub with a data contract: who publishes it, under what licence and "
    "sensitivity, how often it is updated and where to read it. Each caller sees the products it may know of."
)


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
    services = request.app.state.hub
    guard = services.guard(identified)
    g = await _catalogue(request).graph(identified, _base(request), partial(services.quality, guard))
    if media == TURTLE:
        return _private(g.serialize(format="turtle"), TURTLE)
    return _private(g.serialize(format="json-ld", context=CONTEXT, auto_compact=True), JSON_LD)


@router.get("/catalog/contracts/{producer}")
async def contract(request: Request, producer: str, identified: RequestCaller) -> Response:
    """A product's data contract (ODCS YAML); 404 alike for a product that is missing or hidden."""
    assert identified is not None
    found = _catalogue(request).products.find(producer, identified)
    if found is None:
        raise HTTPException(404, detail="Not Found")
    text = yaml.safe_dump(
        found.contract.document.model_dump(exclude_none=True, by_alias=True),
        sort_keys=False,
        allow_unicode=True,
    )
    return _private(text, "application/yaml")
