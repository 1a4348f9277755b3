"""Producer registry: default labels, producer authorizations, the may-assign rule."""

from __future__ import annotations

import json

import pytest

from hub.labels import Authorizations, canonical, parse
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.settings import Settings
from hub.write_policy import check, may_assign

CONFIG = {
    "ngt-eq": {"org": "ngt", "clearance": "official-sensitive", "owns": "ngt-"},
    "nggt-gas": {"org": "nggt", "clearance": "OFFICIAL", "default_label": "org=nggt | org=neso"},
    "open-data": {"org": "ofgem", "default_label": "classification=PUBLIC"},
}


@pytest.fixture
def registry() -> ProducerRegistry:
    return ProducerRegistry(CONFIG)


def test_from_settings_reads_the_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PRODUCERS", json.dumps(CONFIG))
    reg = ProducerRegistry.from_settings(Settings())
    assert reg.ids() == sorted(CONFIG)
    assert canonical(reg.default_label("nggt-gas")) == "org=neso|org=nggt"


def test_default_label_is_own_org_unless_configured(registry: ProducerRegistry) -> None:
    assert canonical(registry.default_label("ngt-eq")) == "org=ngt"
    assert registry.get("nggt-gas").default_label_text == "org=neso|org=nggt"
    assert canonical(registry.default_label("open-data")) == "classification=PUBLIC"


def test_an_unconfigured_producer_is_never_invented(registry: ProducerRegistry) -> None:
    assert "acme" not in registry
    with pytest.raises(ProducerConfigError, match="producer 'acme' is not configured"):
        registry.get("acme")
    with pytest.raises(ProducerConfigError, match="producer '' is not configured"):
        registry.get("")
    with pytest.raises(ProducerConfigError):
        may_assign(registry.authorizations("acme"), "org=acme")


def test_declassify_is_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ProducerRegistry({"a": {"org": "a"}, "b": {"org": "b", "declassify": True}})
    assert not reg.get("a").rights.declassify and not reg.get("a").declassify
    assert reg.get("b").rights.declassify
    assert reg.get("b").rights.authorizations == Authorizations("PUBLIC", frozenset({"org=b"}))
    with pytest.raises(
        ProducerConfigError, match=r"producers\['c'\]\.declassify must be true or false, got 'yes'"
    ):
        ProducerRegistry({"c": {"org": "c", "declassify": "yes"}})
    # Through the environment, as JSON booleans.
    monkeypatch.setenv("HUB_PRODUCERS", json.dumps({"b": {"org": "b", "declassify": True}}))
    assert ProducerRegistry.from_settings(Settings()).get("b").declassify


def test_producer_authorizations(registry: ProducerRegistry) -> None:
    assert registry.authorizations("ngt-eq") == Authorizations("OFFICIAL-SENSITIVE", frozenset({"org=ngt"}))
    assert registry.get("open-data").clearance == "PUBLIC"


@pytest.mark.parametrize(
    ("producer", "label", "allowed"),
    [
        ("ngt-eq", "org=ngt", True),
        ("ngt-eq", "org=ngt&classification=OFFICIAL-SENSITIVE", True),
        ("ngt-eq", "org=ngt&classification=SECRET", False),
        ("ngt-eq", "org=nggt", False),
        ("ngt-eq", "org=nggt|org=ngt", True),
        ("ngt-eq", "org=ngt&role=admin", False),
        ("nggt-gas", "classification=OFFICIAL", True),
        ("nggt-gas", "classification=OFFICIAL-SENSITIVE", False),
        ("open-data", "classification=PUBLIC", True),
    ],
)
def test_may_assign_only_labels_the_producer_satisfies(
    registry: ProducerRegistry, producer: str, label: str, allowed: bool
) -> None:
    assert may_assign(registry.authorizations(producer), label) is allowed
    assert may_assign(registry.get(producer).authorizations, parse(label)) is allowed
    # The write check applies the same rule to a write's new label.
    assert check(registry.get(producer).rights, None, parse(label)).allowed is allowed


def test_owned_mrid_range(registry: ProducerRegistry) -> None:
    assert registry.get("ngt-eq").may_own("ngt-line-1")
    assert not registry.get("ngt-eq").may_own("nggt-pipe-1")
    assert registry.get("nggt-gas").may_own("anything")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"p": {"org": "x", "default_label": "a|b&c"}}, "producers['p'].default_label = 'a|b&c'"),
        ({"p": {"org": "x", "clearance": "TOP"}}, "producers['p'].clearance"),
        ({"p": {"org": ""}}, "producers['p'].org"),
        ({"p": {"org": "x", "colour": "red"}}, "unknown key(s) ['colour']"),
        ({"p": {"org": "x", "default_label": "org=y"}}, "not satisfied by the producer itself"),
        ({"p": {"org": "x", "default_label": "classification=SECRET"}}, "'classification=SECRET'"),
        ({"p": {"org": "x", "owns": ""}}, "producers['p'].owns"),
        ({"p": "org=x"}, "producers['p'] must be an object"),
    ],
)
def test_bad_configuration_names_producer_and_key(config: dict, fragment: str) -> None:
    with pytest.raises(ProducerConfigError) as info:
        ProducerRegistry(config)
    assert fragment in str(info.value)
