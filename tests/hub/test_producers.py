"""Producer registry: default labels, producer authorizations, the may-assign rule."""

from __future__ import annotations

import json

import pytest

from hub.labels import Authorizations, canonical, evaluate, parse
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.settings import Settings

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


def test_unknown_producer_is_default_deny(registry: ProducerRegistry) -> None:
    stranger = registry.get("acme")
    assert not stranger.configured
    assert "acme" not in registry
    assert canonical(stranger.default_label) == "org=acme"
    assert stranger.authorizations == Authorizations("PUBLIC", frozenset({"org=acme"}))
    # Nobody but that organisation sees its data by default, not even a SECRET-cleared caller elsewhere.
    other = Authorizations.from_claims(clearance="SECRET", org="ngt", roles=["planner"])
    assert not evaluate(stranger.default_label, other)
    assert not stranger.may_assign("classification=OFFICIAL")
    assert stranger.may_assign("org=acme|org=ngt")


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
    assert registry.may_assign(producer, label) is allowed
    assert registry.get(producer).may_assign(parse(label)) is allowed


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


def test_empty_producer_id_is_rejected(registry: ProducerRegistry) -> None:
    with pytest.raises(ProducerConfigError, match="empty"):
        registry.get("")
