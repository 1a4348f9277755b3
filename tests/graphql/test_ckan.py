"""The CKAN action API, through a real API server (real Neo4j and Kafka behind it), driven by the real
``ckanapi`` client (which sends its token as the bare ``Authorization`` value and calls ``/api/action/``)
and by plain HTTP on ``/api/3/action/``: the demo's products as packages, and each caller seeing exactly the
products whose metadata label it satisfies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ckanapi
import httpx
import pytest
import yaml
from graphkit import Api, serve

from devstack.demo.producers import PRODUCER_CONFIG
from hub.caller import ANONYMOUS, Caller
from hub.contracts import Contract, load_contracts

DEMO_CONTRACTS = Path(__file__).resolve().parents[2] / "devstack" / "demo" / "contracts"
OFFICIAL = Caller(subject="olga", org="dno", clearance="OFFICIAL")
# Metadata labels for the leak test, so that each caller's view differs from the others' in its own way.
METADATA_LABELS = {
    "ngt": "classification=OFFICIAL",
    "nggt": "classification=OFFICIAL&org=nggt",
    "dno": "classification=SECRET",
}


@pytest.fixture(scope="module")
def portal(settings: Any) -> Iterator[Api]:
    # As the demo runs its API: its producers configured, their contracts in the folder.
    update = {"contracts_dir": DEMO_CONTRACTS, "producers": PRODUCER_CONFIG, "anonymous_access": True}
    with serve(settings.model_copy(update=update)) as api:
        yield api


@pytest.fixture(scope="module")
def labelled(
    settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, dict[str, Contract]]]:
    """The demo's contracts with the metadata labels above, served with anonymous access off."""
    folder = tmp_path_factory.mktemp("contracts")
    for path in DEMO_CONTRACTS.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        label = METADATA_LABELS.get(path.stem)
        if label is not None:
            props = [p for p in doc["customProperties"] if p["property"] != "metadataLabel"]
            doc["customProperties"] = [*props, {"property": "metadataLabel", "value": label}]
        (folder / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    update = {"contracts_dir": folder, "producers": PRODUCER_CONFIG, "anonymous_access": False}
    with serve(settings.model_copy(update=update)) as api:
        yield api, load_contracts(folder)


def client(api: Api, caller: Caller | None) -> ckanapi.RemoteCKAN:
    if caller is None:
        return ckanapi.RemoteCKAN(api.base)
    token = api.token(caller.subject, caller.org, caller.clearance)
    return ckanapi.RemoteCKAN(api.base, apikey=token)


def visible(contracts: dict[str, Contract], caller: Caller) -> list[str]:
    """The oracle: the products whose metadata label admits the caller."""
    return sorted(p for p, c in contracts.items() if c.metadata_visible(caller.authorizations))


def test_ckanapi_lists_shows_and_searches_the_demos_products(portal: Api) -> None:
    contracts = load_contracts(DEMO_CONTRACTS)
    ckan = client(portal, OFFICIAL)
    assert ckan.action.package_list() == sorted(contracts) == visible(contracts, OFFICIAL)
    assert ckan.action.package_list(limit=2, offset=1) == sorted(contracts)[1:3]

    nggt = contracts["nggt"]
    package = ckan.action.package_show(id="nggt")
    assert package["name"] == "nggt" and package["title"] == nggt.name and package["notes"] == nggt.purpose
    assert package["organization"]["name"] == "nggt" and package["owner_org"] == package["organization"]["id"]
    assert package["license_url"] == nggt.licence and package["license_id"] == "OGL-UK-3.0"
    assert {t["name"] for t in package["tags"]} == {*nggt.classes, "Gas"}
    extras = {e["key"]: e["value"] for e in package["extras"]}
    # nggt publishes every minute, promises data at most two minutes old, and is OE-SB.
    assert extras["sensitivity_class"] == "OE-SB" and extras["access_rights"] == "RESTRICTED"
    assert extras["update_frequency"] == "PT1M" and extras["freshness_sla"] == "PT2M"
    assert extras["contract_version"] == nggt.version and extras["contract_id"] == nggt.id
    resources = {r["resource_type"]: r for r in package["resources"]}
    assert set(resources) == {"graphql", "changes", "contract"}
    assert resources["graphql"]["url"] == f"{portal.base}/graphql"
    assert resources["changes"]["url"] == portal.ws_url
    # The contract resource is the contract, as the catalogue serves it.
    contract_yaml = httpx.get(
        resources["contract"]["url"],
        headers={"Authorization": f"Bearer {portal.token('olga', 'dno', 'OFFICIAL')}"},
    )
    assert contract_yaml.status_code == 200 and yaml.safe_load(contract_yaml.text)["id"] == nggt.id
    # By its id as well as its name.
    assert ckan.action.package_show(id=package["id"]) == package

    everything = ckan.action.package_search(rows=1000)
    assert everything["count"] == len(contracts)
    assert [p["name"] for p in everything["results"]] == sorted(contracts)
    assert ckan.action.package_search()["count"] == len(contracts)  # ten rows a page by default
    page = ckan.action.package_search(rows=2, start=2)
    assert page["count"] == len(contracts) and [p["name"] for p in page["results"]] == sorted(contracts)[2:4]
    # fq: organisation, tag, resource format, an extra; q: a word of the title, a field term.
    by_org = ckan.action.package_search(fq="organization:ngt")
    assert [p["name"] for p in by_org["results"]] == ["ngt"]
    either = ckan.action.package_search(fq='organization:(ngt OR "nggt")')
    assert [p["name"] for p in either["results"]] == ["nggt", "ngt"]
    with_class = sorted(p for p, c in contracts.items() if "Terminal" in c.classes)
    assert with_class and len(with_class) < len(contracts)
    tagged = ckan.action.package_search(fq="tags:Terminal", rows=100)
    assert tagged["count"] == len(with_class) and [p["name"] for p in tagged["results"]] == with_class
    assert ckan.action.package_search(fq="res_format:YAML")["count"] == len(contracts)
    assert ckan.action.package_search(fq="res_format:CSV")["count"] == 0
    by_class = sorted(p for p, c in contracts.items() if c.sensitivity == "OE-SA")
    assert [
        p["name"] for p in ckan.action.package_search(fq="sensitivity_class:OE-SA")["results"]
    ] == by_class
    gas = ckan.action.package_search(q="tags:Gas")
    assert [p["name"] for p in gas["results"]] == ["nggt"]
    word = nggt.name.split()[0]
    titled = sorted(p for p, c in contracts.items() if word.lower() in c.name.lower().split())
    found = ckan.action.package_search(q=f"title:{word}", rows=100)
    assert [p["name"] for p in found["results"]] == titled
    not_gas = ckan.action.package_search(q="*:*", fq="-tags:Gas", rows=100)
    assert [p["name"] for p in not_gas["results"]] == sorted(set(contracts) - {"nggt"})

    tenants = Counter(c.document.tenant or p for p, c in contracts.items())
    assert ckan.action.organization_list() == sorted(tenants)
    orgs = ckan.action.organization_list(all_fields=True)
    assert {o["name"]: o["package_count"] for o in orgs} == dict(tenants)

    with pytest.raises(ckanapi.NotFound):
        ckan.action.package_show(id="no-such-product")
    with pytest.raises(ckanapi.ValidationError):
        ckan.action.package_show()
    with pytest.raises(ckanapi.SearchQueryError):
        ckan.action.package_search(fq="no_such_field:x")


def test_two_callers_see_exactly_what_the_metadata_labels_allow(
    labelled: tuple[Api, dict[str, Contract]],
) -> None:
    api, contracts = labelled
    callers = {
        "official": OFFICIAL,
        "nggt": Caller(subject="nina", org="nggt", clearance="OFFICIAL"),
        "public": Caller(subject="pat", org="neso", clearance="PUBLIC"),
    }
    expected = {who: visible(contracts, caller) for who, caller in callers.items()}
    # The views differ, each in its own way, and some product is hidden from everyone here.
    assert len({tuple(v) for v in expected.values()}) == len(callers)
    assert set(contracts) - set().union(*expected.values())
    for who, caller in callers.items():
        ckan = client(api, caller)
        hidden = sorted(set(contracts) - set(expected[who]))
        assert ckan.action.package_list() == expected[who], who
        everything = ckan.action.package_search(rows=1000)
        assert everything["count"] == len(expected[who]), who
        assert [p["name"] for p in everything["results"]] == expected[who]
        terminal = ckan.action.package_search(fq="tags:Terminal", rows=1000)
        assert terminal["count"] == len([p for p in expected[who] if "Terminal" in contracts[p].classes]), who
        tenants = Counter(contracts[p].document.tenant or p for p in expected[who])
        orgs = ckan.action.organization_list(all_fields=True)
        assert {o["name"]: o["package_count"] for o in orgs} == dict(tenants), who
        for producer in expected[who]:
            assert ckan.action.package_show(id=producer)["title"] == contracts[producer].name
        token = api.token(caller.subject, caller.org, caller.clearance)
        missing = action(api, "package_show", token, id="no-such-product")
        for producer in hidden:
            # The same answer as for a product that does not exist, by name and by package id.
            with pytest.raises(ckanapi.NotFound):
                ckan.action.package_show(id=producer)
            shown = action(api, "package_show", token, id=producer)
            assert (
                (shown.status_code, shown.json())
                == (missing.status_code, missing.json())
                == (404, shown.json())
            )
            # Nothing of it anywhere in what the caller can list or search.
            for answer in (everything, orgs, terminal):
                assert contracts[producer].id not in str(answer) and contracts[producer].name not in str(
                    answer
                )
    # Anonymous access is off here: a call without a token is refused as on every other route.
    with pytest.raises(ckanapi.NotAuthorized):
        client(api, None).action.package_list()


def test_an_anonymous_caller_sees_what_anonymous_may(portal: Api) -> None:
    contracts = load_contracts(DEMO_CONTRACTS)
    expected = visible(contracts, ANONYMOUS)
    assert 0 < len(expected) < len(contracts)
    ckan = client(portal, None)
    assert ckan.action.package_list() == expected
    assert ckan.action.package_search(rows=1000)["count"] == len(expected)
    for hidden in set(contracts) - set(expected):
        with pytest.raises(ckanapi.NotFound):
            ckan.action.package_show(id=hidden)


def action(
    api: Api,
    name: str,
    token: str | None,
    *,
    prefix: str = "/api/3/action",
    bare: bool = False,
    **params: Any,
) -> httpx.Response:
    headers = {"Authorization": token if bare else f"Bearer {token}"} if token else {}
    return api.client.get(f"{api.base}{prefix}/{name}", params=params, headers=headers)


def test_both_paths_both_token_forms_and_ckans_errors(portal: Api) -> None:
    token = portal.token("olga", "dno", "OFFICIAL")
    answers = [
        action(portal, "package_show", token, prefix=prefix, bare=bare, id="genco")
        for prefix in ("/api/3/action", "/api/action")
        for bare in (True, False)
    ]
    posted = portal.client.post(
        f"{portal.base}/api/3/action/package_show", json={"id": "genco"}, headers={"Authorization": token}
    )
    for answer in [*answers, posted]:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True and body["help"].endswith("/api/3/action/help_show?name=package_show")
        assert body["result"] == answers[0].json()["result"] and body["result"]["name"] == "genco"
        assert "no-store" in answer.headers["cache-control"] and "Authorization" in answer.headers["vary"]
    # genco is not for anonymous callers: absent without the token.
    anonymous = action(portal, "package_show", None, prefix="/api/action", id="genco")
    assert anonymous.status_code == 404
    assert anonymous.json()["error"] == {"__type": "Not Found Error", "message": "Not found"}
    assert anonymous.json()["success"] is False

    for bare in (True, False):
        refused = action(portal, "package_list", "not.a.token", bare=bare)
        assert refused.status_code == 401 and refused.json()["success"] is False
        assert refused.json()["error"]["__type"] == "Authorization Error"
        assert "WWW-Authenticate" in refused.headers
    # The bare form is CKAN's, accepted on these paths only: elsewhere a token needs its scheme.
    assert portal.client.get(f"{portal.base}/catalog", headers={"Authorization": token}).status_code == 401
    unknown = action(portal, "package_delete", token, id="genco")
    assert unknown.status_code == 400 and unknown.json()["success"] is False
    assert "Action name not known: package_delete" in unknown.json()["error"]["message"]
    missing_id = action(portal, "package_show", token)
    assert missing_id.status_code == 409
    assert missing_id.json()["error"] == {"__type": "Validation Error", "id": ["Missing value"]}
    bad_rows = action(portal, "package_search", token, rows="many")
    assert bad_rows.status_code == 409 and bad_rows.json()["error"]["rows"] == ["Invalid integer"]
    bad_field = action(portal, "package_search", token, fq="nope:1")
    assert bad_field.status_code == 409 and bad_field.json()["error"]["__type"] == "Search Query Error"
