"""Who may write what (issue 12, findings 2, 3 and the write side of 9), attacked through the real HTTP
API, Kafka, worker and Neo4j; each test then looks at the graph, at what GraphQL shows, and at the audit
trail and dead letters.
"""

from __future__ import annotations

import uuid

import pytest
from writepath import Stack, event

from hub.labels import Authorizations
from hub.write_policy import (
    AUTHORIZATIONS_HEADER,
    DECLASSIFY_HEADER,
    SUBJECT_HEADER,
    WriteRights,
    encode_rights,
)

pytestmark = pytest.mark.services

OFFICIAL = "classification=OFFICIAL"
PUBLIC = "classification=PUBLIC"
SECRET = "classification=SECRET"


def publish(stack: Stack, token: str, *events: dict[str, object]) -> None:
    response = stack.post(token, *events)
    assert response.status_code == 202, response.text


def test_a_public_member_of_the_producers_org_cannot_declassify(stack: Stack) -> None:
    line = stack.mrid("line")
    planner = stack.token("grid.planner", "ngt", "OFFICIAL", "producer:ngt")
    publish(stack, planner, event("ngt", line, 1, label=OFFICIAL, name="secret-ish"))
    stack.settle("ngt")
    assert stack.node(line)["label"] == OFFICIAL  # type: ignore[index]
    assert stack.read(line) is None  # anonymous

    # A member of ngt with PUBLIC clearance and no producer role is refused by the API.
    member = stack.token("ngt.member", "ngt", "PUBLIC")
    response = stack.post(member, event("ngt", line, 2, label=PUBLIC))
    assert response.status_code == 422
    [refused] = response.json()["rejected"]
    assert "role 'producer:ngt'" in refused["reason"]

    # Even with the producer role, a PUBLIC caller cannot touch an OFFICIAL object: the API cannot know
    # the stored label, the worker does, and refuses.
    clerk = stack.token("ngt.clerk", "ngt", "PUBLIC", "producer:ngt")
    publish(stack, clerk, event("ngt", line, 2, label=PUBLIC, name="leaked"))
    stack.settle("ngt")
    stored = stack.node(line)
    assert stored is not None and (stored["label"], stored["version"], stored["name"]) == (
        OFFICIAL,
        1,
        "secret-ish",
    )
    assert stack.read(line) is None
    [dead] = stack.dead_letters(line)
    assert dead["reason-class"] == "label"
    assert "current label 'classification=OFFICIAL'" in dead["reason"]
    [audit] = stack.audits("write.refused", mrid=line)
    assert audit["subject"] == "ngt.clerk" and audit["producer"] == "ngt" and audit["version"] == 2


def test_an_official_caller_cannot_write_above_its_clearance(stack: Stack) -> None:
    line = stack.mrid("line")
    official = stack.token("official", "ngt", "OFFICIAL", "producer:ngt")
    response = stack.post(official, event("ngt", line, 1, label=SECRET))
    assert response.status_code == 422
    [refused] = response.json()["rejected"]
    assert refused["field"] == "label" and "new label 'classification=SECRET'" in refused["reason"]

    # Written straight to the topic with the caller's rights in the headers (as the API would), the
    # worker refuses it too: the API's check is not the only one.
    caller = WriteRights(Authorizations("OFFICIAL", frozenset({"org=ngt", "role=producer:ngt"})))
    stack.send("ngt", event("ngt", line, 1, label=SECRET), encode_rights(caller, "official"))
    stack.settle("ngt")
    assert stack.node(line) is None
    [dead] = stack.dead_letters(line)
    assert "new label 'classification=SECRET'" in dead["reason"]


def test_a_caller_cannot_delete_or_measure_what_it_cannot_see(stack: Stack) -> None:
    line = stack.mrid("line")
    secret = stack.token("secret", "ngt", "SECRET", "producer:ngt")
    publish(stack, secret, event("ngt", line, 1, label=SECRET))
    official = stack.token("official", "ngt", "OFFICIAL", "producer:ngt")
    publish(stack, official, event("ngt", line, 2, kind="delete"))
    publish(stack, official, event("ngt", line, 3, kind="measurement", name="overwritten"))
    stack.settle("ngt")
    stored = stack.node(line)
    assert stored is not None and "Tombstone" not in stored["labels"]
    assert (stored["label"], stored["version"]) == (SECRET, 1)
    assert stack.read(line, secret) is not None
    assert len(stack.dead_letters(line)) == 2
    # The SECRET caller may delete it.
    publish(stack, secret, event("ngt", line, 4, kind="delete"))
    stack.settle("ngt")
    assert "Tombstone" in stack.node(line)["labels"]  # type: ignore[index]


def test_widening_needs_a_declassifier_and_is_audited(stack: Stack) -> None:
    line = stack.mrid("line")
    planner = stack.token("planner", "ngt", "OFFICIAL", "producer:ngt")
    publish(stack, planner, event("ngt", line, 1, label=OFFICIAL))
    publish(stack, planner, event("ngt", line, 2, label=PUBLIC))
    stack.settle("ngt")
    assert stack.node(line)["label"] == OFFICIAL  # type: ignore[index]
    [dead] = stack.dead_letters(line)
    assert "widens" in dead["reason"] and "declassify=False" in dead["reason"]
    assert stack.read(line) is None

    declassifier = stack.token("declassifier", "ngt", "OFFICIAL", "producer:ngt", "declassifier:ngt")
    publish(stack, declassifier, event("ngt", line, 3, label=PUBLIC))
    stack.settle("ngt")
    assert stack.node(line)["label"] == PUBLIC  # type: ignore[index]
    assert stack.read(line) is not None
    [changed] = stack.audits("label.changed", mrid=line)
    assert changed["old_label"] == OFFICIAL and changed["new_label"] == PUBLIC
    assert changed["declassified"] is True and changed["subject"] == "declassifier"
    assert changed["producer"] == "ngt"
    # Narrowing is a label change too, not a declassification.
    publish(stack, planner, event("ngt", line, 4, label=OFFICIAL))
    stack.settle("ngt")
    narrowed = stack.audits("label.changed", mrid=line, version=4)
    assert [(a["old_label"], a["new_label"], a["declassified"]) for a in narrowed] == [
        (PUBLIC, OFFICIAL, False)
    ]


def test_a_declassifier_role_cannot_exceed_its_producer(stack: Stack) -> None:
    # gasco is not configured to declassify: its callers' roles narrow, never widen, what it may do.
    pipe = stack.mrid("pipe")
    caller = stack.token("gas.declassifier", "gasco", "OFFICIAL", "producer:gasco", "declassifier")
    publish(stack, caller, event("gasco", pipe, 1, label="classification=OFFICIAL&org=gasco"))
    publish(stack, caller, event("gasco", pipe, 2, label="org=gasco"))
    stack.settle("gasco")
    assert stack.node(pipe)["label"] == "classification=OFFICIAL&org=gasco"  # type: ignore[index]
    [dead] = stack.dead_letters(pipe)
    assert "widens" in dead["reason"]


def test_only_configured_producers_publish_over_http(stack: Stack) -> None:
    analyst = stack.token("public.analyst", "public", "PUBLIC", "producer:public")
    thing = stack.mrid("thing")
    response = stack.post(analyst, event("public", thing, 1, label=PUBLIC))
    assert response.status_code == 422
    [refused] = response.json()["rejected"]
    assert "producer 'public' is not configured" in refused["reason"]
    # An organisation claim naming a configured producer is no role either.
    response = stack.post(stack.token("ngt.person", "ngt", "SECRET"), event("ngt", thing, 1))
    assert response.status_code == 422


def test_only_configured_producers_publish_over_kafka(stack: Stack) -> None:
    thing = stack.mrid("thing")
    # Anyone who can create a topic under the prefix: the worker picks it up and refuses what is on it.
    stack.send("public", event("public", thing, 1, label=PUBLIC))
    stack.wait(lambda: bool(stack.dead_letters(thing)), "the dead letter of the unconfigured producer")
    [dead] = stack.dead_letters(thing)
    assert dead["reason-class"] == "source" and "producer 'public' is not configured" in dead["reason"]
    assert stack.node(thing) is None
    assert stack.audits("write.refused", mrid=thing)


def test_an_mrid_outside_the_producers_owns_is_refused_and_audited(stack: Stack) -> None:
    writer = f"tso.writer-{uuid.uuid4().hex[:6]}"
    caller = stack.token(writer, "tso", "OFFICIAL", "producer:tso")
    outside = f"elsewhere-{stack.mrid('line')}"
    # Over HTTP: the API refuses it, names the rule, and audits the refusal under the caller.
    response = stack.post(caller, event("tso", outside, 1))
    assert response.status_code == 422
    [refused] = response.json()["rejected"]
    assert refused["field"] == "subject" and refused["value"] == outside
    assert "producer 'tso' may only write mRIDs starting 'sec'" in refused["reason"]
    [audit] = stack.api_audits("ingest.refused", subject=writer)
    assert audit["field"] == "subject" and audit["value"] == outside and audit["reason"] == refused["reason"]
    # Straight to the topic: the worker dead-letters it as an ownership refusal, audited as one.
    stack.send("tso", event("tso", outside, 1))
    stack.wait(lambda: bool(stack.dead_letters(outside)), "the dead letter of the foreign mRID")
    [dead] = stack.dead_letters(outside)
    assert dead["reason-class"] == "ownership" and "may only write mRIDs starting 'sec'" in dead["reason"]
    [owned] = stack.audits("ownership.refused", mrid=outside)
    assert owned["reason_class"] == "ownership"
    assert stack.node(outside) is None
    # Inside the rule the same caller writes.
    inside = stack.mrid("line")
    publish(stack, caller, event("tso", inside, 1))
    stack.settle("tso")
    assert stack.node(inside)["owner"] == "tso"  # type: ignore[index]


def test_an_object_of_another_producer_is_refused_as_an_ownership_decision(stack: Stack) -> None:
    line = stack.mrid("line")
    publish(stack, stack.token("planner", "ngt", "OFFICIAL", "producer:ngt"), event("ngt", line, 1))
    stack.settle("ngt")
    intruder = f"tso.intruder-{uuid.uuid4().hex[:6]}"
    publish(stack, stack.token(intruder, "tso", "OFFICIAL", "producer:tso"), event("tso", line, 2))
    stack.settle("tso")
    assert (stack.node(line)["owner"], stack.node(line)["version"]) == ("ngt", 1)  # type: ignore[index]
    [dead] = stack.dead_letters(line)
    assert dead["reason-class"] == "ownership" and "owned by producer 'ngt', not 'tso'" in dead["reason"]
    [audit] = stack.audits("ownership.refused", mrid=line)
    assert (audit["subject"], audit["producer"], audit["version"]) == (intruder, "tso", 2)


def test_a_delete_of_an_absent_object_claims_nothing(stack: Stack) -> None:
    pipe = stack.mrid("pipe")
    squatter = stack.token("squatter", "ngt", "SECRET", "producer:ngt")
    publish(stack, squatter, event("ngt", pipe, 1_000_000, kind="delete", cls="ACLineSegment"))
    stack.settle("ngt")
    assert stack.node(pipe) is None
    owner = stack.token("gas.owner", "gasco", "OFFICIAL", "producer:gasco")
    publish(stack, owner, event("gasco", pipe, 1, label="org=gasco"))
    stack.settle("gasco")
    stored = stack.node(pipe)
    assert stored is not None and (stored["owner"], stored["version"]) == ("gasco", 1)
    # The squatter's delete was ignored, not refused, and the owner's create was not refused either.
    assert stack.dead_letters(pipe, timeout_s=5.0) == []
    [claimed] = [r for r in stack.audits("ownership.claimed") if [c["mrid"] for c in r["claims"]] == [pipe]]
    assert claimed["producer"] == "gasco" and claimed["subject"] == "gas.owner"


def test_stubs_belong_to_nobody_until_their_owner_publishes(stack: Stack) -> None:
    line, voltage = stack.mrid("line"), stack.mrid("voltage")
    planner = stack.token("planner", "ngt", "OFFICIAL", "producer:ngt")
    publish(
        stack,
        planner,
        event("ngt", line, 1, label=OFFICIAL, references={"ConductingEquipment.BaseVoltage": voltage}),
    )
    stack.settle("ngt")
    stub = stack.node(voltage)
    assert stub is not None and "Stub" in stub["labels"] and stub["owner"] is None
    # The referrer cannot delete the stub into a tombstone nobody can pass, nor does the attempt claim it.
    publish(stack, planner, event("ngt", voltage, 50, kind="delete", cls="BaseVoltage"))
    stack.settle("ngt")
    assert stack.node(voltage)["owner"] is None  # type: ignore[index]
    owner = stack.token("gas.owner", "gasco", "OFFICIAL", "producer:gasco")
    publish(stack, owner, event("gasco", voltage, 1, label="org=gasco", cls="BaseVoltage"))
    stack.settle("gasco")
    completed = stack.node(voltage)
    assert completed is not None and "Stub" not in completed["labels"]
    assert (completed["owner"], completed["label"]) == ("gasco", "org=gasco")


def test_the_api_sends_the_callers_rights_with_each_event(stack: Stack) -> None:
    line = stack.mrid("line")
    caller = stack.token("carrier", "ngt", "OFFICIAL", "producer:ngt", "declassifier")
    publish(stack, caller, event("ngt", line, 1, label=OFFICIAL))
    [(_, headers)] = stack.records(stack.topic("ngt"), lambda v, _h: v.get("subject") == line)
    assert headers[DECLASSIFY_HEADER] == b"true" and headers[SUBJECT_HEADER] == b"carrier"
    assert b'"clearance":"OFFICIAL"' in headers[AUTHORIZATIONS_HEADER]
