"""The DCAT catalogue at /catalog, through a real API server (real Neo4j and Kafka behind it), read back
with rdflib: the demo's products as datasets, JSON-LD and Turtle alike, and each caller seeing exactly the
products whose metadata label it satisfies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from graphkit import Api, serve
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, RDF, XSD

from devstack.demo.producers import PRODUCER_CONFIG
from hub.caller import ANONYMOUS, Caller
from hub.contracts import load_contracts, parse_contract

DEMO_CONTRACTS = Path(__file__).resolve().parents[2] / "devstack" / "demo" / "contracts"
DCAT = Namespace("http://www.w3.org/ns/dcat#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
HUB = Namespace("https://w3id.org/energy-hub/ontology#")


@pytest.fixture(scope="module")
def portal(settings: Any) -> Iterator[Api]:
    # As the demo runs its API: its producers configured, their contracts in the folder.
    update = {"contracts_dir": DEMO_CONTRACTS, "producers": PRODUCER_CONFIG, "anonymous_access": True}
    with serve(settings.model_copy(update=update)) as api:
        yield api


def fetch(api: Api, token: str | None, accept: str | None = None, path: str = "/catalog") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept is not None:
        headers["Accept"] = accept
    return api.client.get(api.base + path, headers=headers)


def catalogue(api: Api, token: str | None) -> tuple[Graph, str]:
    """The caller's catalogue, asked for in both formats: the same graph either way."""
    turtle = fetch(api, token, "text/turtle")
    jsonld = fetch(api, token, "application/ld+json")
    assert turtle.status_code == jsonld.status_code == 200, (turtle.text, jsonld.text)
    assert turtle.headers["content-type"].startswith("text/turtle")
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert "Authorization" in turtle.headers["vary"] and "no-store" in turtle.headers["cache-control"]
    g = Graph().parse(data=turtle.text, format="turtle")
    assert isomorphic(g, Graph().parse(data=jsonld.text, format="json-ld"))
    return g, turtle.text + jsonld.text


def datasets(g: Graph) -> dict[str, URIRef]:
    """Producer id -> dataset IRI of the catalogue's datasets."""
    (catalog,) = g.subjects(RDF.type, DCAT.Catalog)
    found: dict[str, URIRef] = {}
    for ds in g.objects(catalog, DCAT.dataset):
        assert (ds, RDF.type, DCAT.Dataset) in g
        found[str(g.value(ds, HUB.producer))] = URIRef(ds)
    return found


def test_two_callers_see_exactly_the_products_their_clearance_allows(portal: Api) -> None:
    contracts = load_contracts(DEMO_CONTRACTS)
    official = Caller(subject="olga", org="dno", clearance="OFFICIAL")
    # The oracle: a product is listed when its metadata label admits the caller, and only then.
    expected = {
        who: {p for p, c in contracts.items() if c.metadata_visible(caller.authorizations)}
        for who, caller in (("anonymous", ANONYMOUS), ("official", official))
    }
    assert expected["anonymous"] < expected["official"] == set(contracts)  # the two views differ
    for who, token in (("anonymous", None), ("official", portal.token("olga", "dno", "OFFICIAL"))):
        g, text = catalogue(portal, token)
        assert set(datasets(g)) == expected[who], who
        for hidden in set(contracts) - expected[who]:
            # Absent, not merely unlisted: nothing of its contract is in the answer.
            assert contracts[hidden].id not in text and contracts[hidden].name not in text
        for producer in expected[who]:
            answer = fetch(portal, token, path=f"/catalog/contracts/{producer}")
            assert answer.status_code == 200
            assert parse_contract(yaml.safe_load(answer.text), producer).id == contracts[producer].id
        for hidden in set(contracts) - expected[who]:
            answer = fetch(portal, token, path=f"/catalog/contracts/{hidden}")
            missing = fetch(portal, token, path="/catalog/contracts/no-such-product")
            assert (
                (answer.status_code, answer.text)
                == (missing.status_code, missing.text)
                == (
                    404,
                    '{"detail":"Not Found"}',
                )
            )


def test_a_dataset_carries_the_contracts_terms(portal: Api) -> None:
    g, _ = catalogue(portal, None)
    contract = load_contracts(DEMO_CONTRACTS)["nggt"]
    ds = datasets(g)["nggt"]
    assert g.value(ds, DCTERMS.identifier) == Literal(contract.id)
    assert g.value(ds, DCAT.version) == Literal("1.0.0")
    assert g.value(ds, DCTERMS.license) == URIRef(contract.licence)
    assert g.value(ds, DCTERMS.accessRights) == URIRef(
        "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
    )
    assert g.value(ds, HUB.sensitivityClass) == Literal("OE-SB")
    rights = g.value(ds, DCTERMS.rights)
    assert g.value(rights, DCTERMS.identifier) == Literal("OE-SB")
    # nggt publishes every minute, and promises data at most two minutes old.
    assert g.value(ds, DCTERMS.accrualPeriodicity) == URIRef(
        "http://publications.europa.eu/resource/authority/frequency/1MIN"
    )
    assert g.value(ds, DCAT.temporalResolution) == Literal("PT1M", datatype=XSD.duration)
    assert g.value(ds, HUB.freshness) == Literal("PT2M", datatype=XSD.duration)
    publisher = g.value(ds, DCTERMS.publisher)
    assert str(g.value(publisher, URIRef("http://xmlns.com/foaf/0.1/name"))) == "nggt"
    contact = g.value(ds, DCAT.contactPoint)
    assert g.value(contact, VCARD.hasEmail) == URIRef("mailto:gas-data@nggt.example")
    assert str(g.value(contact, VCARD.fn)) == contract.owner
    conforms = set(g.objects(ds, DCTERMS.conformsTo))
    assert conforms == {
        URIRef(f"{portal.base}/catalog/contracts/nggt"),
        URIRef("https://w3id.org/energy-hub/gas"),
    }
    titles = {str(g.value(d, DCTERMS.title)) for d in g.objects(ds, DCAT.distribution)}
    assert titles == {"GraphQL view", "Change feed"}
    for dist in g.objects(ds, DCAT.distribution):
        assert (dist, RDF.type, DCAT.Distribution) in g
        assert g.value(dist, DCTERMS.license) == URIRef(contract.licence)
        assert str(g.value(dist, DCAT.accessURL)).endswith("/graphql")
    # The grid's product conforms to CIM 16.
    ngt = datasets(g)["ngt"]
    assert URIRef("http://iec.ch/TC57/2013/CIM-schema-cim16") in set(g.objects(ngt, DCTERMS.conformsTo))
    assert {str(k) for k in g.objects(ngt, DCAT.keyword)} >= {"ACLineSegment", "Substation"}


def test_content_negotiation(portal: Api) -> None:
    assert fetch(portal, None, "text/html").status_code == 406
    assert (
        fetch(portal, None, "text/turtle;q=0.2, application/ld+json")
        .headers["content-type"]
        .startswith("application/ld+json")
    )
    assert (
        fetch(portal, None, "application/ld+json;q=0.1, text/turtle")
        .headers["content-type"]
        .startswith("text/turtle")
    )
    assert fetch(portal, None, "*/*").headers["content-type"].startswith("application/ld+json")
    by_query = portal.client.get(portal.base + "/catalog?format=turtle", headers={"Accept": "text/html"})
    assert by_query.status_code == 200 and by_query.headers["content-type"].startswith("text/turtle")
    # A bad token is refused as on every other route.
    assert fetch(portal, "not.a.token").status_code == 401
