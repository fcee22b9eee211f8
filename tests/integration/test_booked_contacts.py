"""Contact plans booked from ground networks, through the real server, SDK and CLI on SQLite and
PostgreSQL: a plan imported and a request scheduled inside its windows (replace mode), booked
time intersected with geometry (restrict mode), warnings naming windows the satellite is not
visible during, and every kind of bad plan refused with its status and a message naming it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from orbitq.clients import InvalidArgumentError, NotFoundError, PermissionDeniedError
from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.constellation import StoredContact
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import STATION_IDS, operator, tenant_key
from tests.requests.rpc import job, world_and_tenant

pytestmark = pytest.mark.settlement("plan")

HOUR = timedelta(hours=1)


def iso(value: datetime | int) -> str:
    instant = from_ns(value) if isinstance(value, int) else value
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def window(contact: StoredContact, **extra: object) -> dict[str, object]:
    """A booked window a second inside `contact` (computed windows are refined to the second)."""
    return {
        "node": contact.node,
        "station": contact.station,
        "start": iso(contact.aos_ns + NANOS_PER_SECOND),
        "end": iso(contact.los_ns - NANOS_PER_SECOND),
        **extra,
    }


def future_contacts(server: ServerHandle, node: str = "") -> list[StoredContact]:
    return [
        c
        for c in server.broker.constellation.contacts_between(EPOCH, EPOCH + 10 * HOUR, node=node)
        if c.aos_ns > (EPOCH + 20 * timedelta(minutes=1)).timestamp() * NANOS_PER_SECOND
        and c.los_ns - c.aos_ns > 120 * NANOS_PER_SECOND
    ]


def invisible_window(server: ServerHandle, station: str) -> dict[str, object]:
    """Five minutes during which the first node has no computed contact with `station`."""
    node = future_contacts(server)[0].node
    passes = server.broker.constellation.contacts_between(
        EPOCH, EPOCH + 10 * HOUR, node=node, station=station
    )
    start = EPOCH + HOUR
    while any(
        c.aos_ns < (start + timedelta(minutes=5)).timestamp() * NANOS_PER_SECOND
        and c.los_ns > start.timestamp() * NANOS_PER_SECOND
        for c in passes
    ):
        start += timedelta(minutes=5)
    return {
        "node": node,
        "station": station,
        "start": iso(start),
        "end": iso(start + timedelta(minutes=5)),
    }


def test_a_request_is_scheduled_inside_booked_windows(server: ServerHandle) -> None:
    broker = server.broker
    with world_and_tenant(server) as acme:
        node = future_contacts(server)[0].node
        booked = future_contacts(server, node)[:3]
        plan = {
            # Every station replaced: only booked windows are contacts now.
            "stations": dict.fromkeys(STATION_IDS, "replace"),
            "windows": [window(c, downlink_mbps=150) for c in booked],
        }
        with operator(server) as admin:
            report = admin.import_contact_plan(json.dumps(plan))
        assert report.windows == len(booked)
        assert report.stations == tuple(sorted(STATION_IDS))
        assert report.warnings == ()
        assert not report.dry_run
        in_use = broker.constellation.contacts_between(EPOCH, EPOCH + 12 * HOUR)
        assert [(c.node, c.station) for c in in_use] == [(c.node, c.station) for c in booked]
        assert all(c.id.startswith("b-") for c in in_use)

        request = acme.submit(job(run_seconds=120, output_mb=50)).request
        broker.scheduling.run_cycle()
        placed = acme.get_request(request.id)
        assert placed.state == "placed", placed.reason
        placement = placed.placement
        assert placement is not None
        assert placement.node == node
        windows = [(from_ns(c.aos_ns), from_ns(c.los_ns)) for c in in_use]
        for used in placement.contacts:
            assert used.id.startswith("b-")
            assert any(start <= used.start < used.end <= end for start, end in windows), used


def test_restrict_keeps_only_booked_time_inside_geometry(server: ServerHandle) -> None:
    with world_and_tenant(server):
        contact = future_contacts(server)[0]
        half = contact.aos_ns + (contact.los_ns - contact.aos_ns) // 2
        # Booked from well before the pass to its middle: only the pass's first half is usable.
        plan = (
            "node,station,start,end,mode\n"
            f"{contact.node},{contact.station},{iso(contact.aos_ns - 600 * NANOS_PER_SECOND)},"
            f"{iso(half)},restrict\n"
        )
        with operator(server) as admin:
            report = admin.import_contact_plan(plan, fmt="csv")
        assert report.windows == 1
        assert len(report.warnings) == 1
        assert "visible for only" in report.warnings[0]
        assert f"node {contact.node} at {contact.station}" in report.warnings[0]
        at_station = server.broker.constellation.contacts_between(
            EPOCH, EPOCH + 12 * HOUR, station=contact.station
        )
        assert len(at_station) == 1
        (kept,) = at_station
        assert (kept.aos_ns, kept.node) == (contact.aos_ns, contact.node)
        assert abs(kept.los_ns - half) < NANOS_PER_SECOND
        # Other stations keep their computed contacts.
        others = server.broker.constellation.contacts_between(EPOCH, EPOCH + 12 * HOUR)
        assert len(others) > 1
        # Back to computed: the station's booked plan is dropped.
        with operator(server) as admin:
            admin.import_contact_plan(json.dumps({"stations": {contact.station: "computed"}}))
        again = server.broker.constellation.contacts_between(
            EPOCH, EPOCH + 12 * HOUR, station=contact.station
        )
        assert len(again) > 1


def test_invisible_windows_are_named_and_dry_runs_store_nothing(server: ServerHandle) -> None:
    with world_and_tenant(server):
        ghost = invisible_window(server, STATION_IDS[2])
        with operator(server) as admin:
            before = server.broker.constellation.plan().version
            report = admin.import_contact_plan(json.dumps([ghost]), dry_run=True)
            assert report.dry_run
            assert report.not_visible == 1
            (warning,) = report.warnings
            assert "record 1" in warning
            assert f"node {ghost['node']} at {ghost['station']}" in warning
            assert "not visible" in warning
            assert server.broker.constellation.plan().version == before
            computed = server.broker.constellation.contacts_between(
                EPOCH, EPOCH + 12 * HOUR, station=STATION_IDS[2]
            )
            assert computed
            assert not any(c.id.startswith("b-") for c in computed)


def bad(server: ServerHandle, text: str) -> str:
    with operator(server) as admin, pytest.raises(InvalidArgumentError) as caught:
        admin.import_contact_plan(text)
    return str(caught.value)


def test_bad_plans_are_refused_and_named(server: ServerHandle) -> None:
    with world_and_tenant(server):
        contact = future_contacts(server)[0]
        good = window(contact)
        assert "end must be after start" in bad(
            server, json.dumps([{**good, "end": good["start"]}])
        )
        assert "is already over" in bad(
            server,
            json.dumps([{**good, "start": iso(EPOCH - 2 * HOUR), "end": iso(EPOCH - HOUR)}]),
        )
        assert "beyond any contact horizon" in bad(
            server,
            json.dumps(
                [{**good, "start": iso(EPOCH + 200 * HOUR), "end": iso(EPOCH + 201 * HOUR)}]
            ),
        )
        overlapping = bad(
            server,
            json.dumps([good, {**good, "start": iso(contact.aos_ns + 5 * NANOS_PER_SECOND)}]),
        )
        assert "record 2" in overlapping
        assert "overlaps record 1" in overlapping
        others = sorted({c.node for c in future_contacts(server)} - {contact.node})[:2]
        crowd = [good, *({**good, "node": node} for node in others)]
        assert f"3 windows at once at station {contact.station}, which has 2" in bad(
            server, json.dumps(crowd)
        )
        shared = [{**good, "antenna": 1}, {**good, "node": others[0], "antenna": 1}]
        assert f"on antenna 1 at {contact.station}" in bad(server, json.dumps(shared))
        assert "has no time zone" in bad(
            server, json.dumps([{**good, "start": "2025-12-06T10:00"}])
        )
        assert "header must name the columns" in bad(server, "node,station,begin\n1,2,3\n")
        assert "line 2: 3 cells" in bad(server, "node,station,start,end\n1,2,3\n")
        assert "not valid JSON" in bad(server, "{not json")
        assert "antenna 9, but station" in bad(server, json.dumps([{**good, "antenna": 9}]))
        with operator(server) as admin, pytest.raises(NotFoundError, match="unknown node 99"):
            admin.import_contact_plan(json.dumps([{**good, "node": "99"}]))
        with operator(server) as admin, pytest.raises(NotFoundError, match="unknown station"):
            admin.import_contact_plan(json.dumps([{**good, "station": "atlantis"}]))
        with (
            operator(server) as admin,
            pytest.raises(InvalidArgumentError, match="more than 10,000 windows"),
        ):
            admin.import_contact_plan(json.dumps([good] * 10_001))
        # Nothing of the refused plans was stored.
        in_use = server.broker.constellation.contacts_between(EPOCH, EPOCH + 12 * HOUR)
        assert not any(c.id.startswith("b-") for c in in_use)


def test_tenants_may_not_import_plans(server: ServerHandle) -> None:
    from orbitq.clients import BrokerClient

    with (
        BrokerClient(server.target, tenant_key(server), timeout=30) as tenant,
        pytest.raises(PermissionDeniedError, match="operator"),
    ):
        tenant.import_contact_plan("node,station,start,end\n")


def test_the_cli_imports_a_plan_and_warns(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with world_and_tenant(server):
        contact = future_contacts(server)[0]
        ghost = invisible_window(server, STATION_IDS[1])
        good = window(contact)
        plan = tmp_path / "plan.csv"
        plan.write_text(
            "node,station,start,end,downlink_mbps\n"
            + "".join(
                f"{w['node']},{w['station']},{w['start']},{w['end']},120\n" for w in (good, ghost)
            )
        )
        online = ["--target", server.target, "--api-key", server.operator_key]
        code = main(["contacts", "import", str(plan), "--mode", "restrict", *online])
        captured = capsys.readouterr()
        assert code == 0
        assert "imported 2 booked window(s)" in captured.out
        assert "line 3 (node" in captured.err
        assert "not visible" in captured.err
        code = main(["contacts", "import", str(plan), "--json", *online])
        captured = capsys.readouterr()
        assert code == 0
        document = json.loads(captured.out)
        assert document["windows"] == 2
        assert document["replaced"] == 2
        assert document["not_visible"] == 1
        plan.write_text("node,station,start,end\n1,2,3,4\n")
        assert main(["contacts", "import", str(plan), *online]) == EXIT_BROKER_ERROR
        assert "not an RFC 3339 time" in capsys.readouterr().err
