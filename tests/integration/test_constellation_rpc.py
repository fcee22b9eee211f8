"""ConstellationService end to end: nodes and stations through the real server and SDK, on
SQLite and PostgreSQL (the contact plan has its own module, test_contact_plan.py)."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from orbitq.clients import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from orbitq.services.orbits import parse_elements, tle_checksum
from orbitq.v1 import constellation_pb2, constellation_pb2_grpc
from tests.conftest import ServerHandle
from tests.integration.sky import (
    STARLINK_COUNT,
    omm_text,
    operator,
    starlink_text,
    stations_csv,
    tenant_client,
)


def _break_checksum(text: str, line_number: int) -> str:
    """`text` with the checksum digit of its 1-based line `line_number` made wrong."""
    lines = text.splitlines()
    line = lines[line_number - 1]
    wrong = (tle_checksum(line[:68]) + 1) % 10
    lines[line_number - 1] = line[:68] + str(wrong)
    return "\n".join(lines) + "\n"


def test_import_tle_then_list_filter_and_page(server: ServerHandle) -> None:
    text = starlink_text()
    with operator(server) as admin:
        report = admin.import_nodes(
            text, cpu_millicores=8000, labels={"operator": "spacex", "shell": "53"}
        )
        assert (report.created, report.updated, report.problems) == (STARLINK_COUNT, 0, ())
        assert report.stale == ()
        nodes = admin.list_nodes().items
        assert [n.norad_id for n in nodes] == sorted(n.norad_id for n in nodes)
        first = nodes[0]
        assert (first.id, first.name, first.state) == ("44714", "STARLINK-1008", "ready")
        assert text.splitlines()[1:3] == [first.tle_line1, first.tle_line2]
        assert first.omm_json == ""
        # Given cpu, the broker's defaults for the rest.
        assert (first.cpu_millicores, first.storage_mb, first.downlink_mbps) == (8000, 64000, 100)
        assert first.labels == {"operator": "spacex", "shell": "53"}
        assert len(admin.list_nodes(labels={"operator": "spacex", "shell": "53"}).items) == 20
        assert admin.list_nodes(labels={"operator": "spacex", "shell": "70"}).items == []
        pages, token = [], ""
        while True:
            page = admin.list_nodes(page_size=7, page_token=token)
            pages.append([n.id for n in page.items])
            token = page.next_page_token
            if not token:
                break
        assert [len(p) for p in pages] == [7, 7, 6]
        assert [i for p in pages for i in p] == [n.id for n in nodes]
        with pytest.raises(InvalidArgumentError, match="different query"):
            admin.list_nodes(
                state="ready", page_size=7, page_token=admin.list_nodes(page_size=7).next_page_token
            )
    # In-process, the element sets come back exactly as parsed (TLE lines included).
    stored = [node.elements for node in server.broker.constellation.nodes()]
    parsed = sorted(parse_elements(text).elements, key=lambda e: e.norad_id)
    assert stored == parsed


def test_reimport_updates_elements_and_keeps_what_was_not_given(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.import_nodes(starlink_text(), cpu_millicores=8000, labels={"shell": "53"})
        admin.set_node_state("44714", "degraded")
        again = admin.import_nodes(starlink_text(), storage_mb=1000, labels={"plane": "p1"})
        assert (again.created, again.updated) == (0, STARLINK_COUNT)
        nodes = admin.list_nodes().items
        assert len(nodes) == STARLINK_COUNT
        node = next(n for n in nodes if n.id == "44714")
        assert (node.cpu_millicores, node.storage_mb, node.state) == (8000, 1000, "degraded")
        assert node.labels == {"shell": "53", "plane": "p1"}


def test_omm_json_and_csv_upsert_the_same_nodes_and_warn_when_stale(
    server: ServerHandle,
) -> None:
    with operator(server) as admin:
        report = admin.import_nodes(omm_text("omm-sample.json"))
        assert (report.created, report.updated) == (7, 0)
        # The ISS set is a year old and OneWeb's 16 days ahead of the broker's clock.
        assert set(report.stale) == {"25544", "612345", "44057"}
        assert any("days from the broker's clock" in w for w in report.warnings)
        again = admin.import_nodes(omm_text("omm-sample.csv"), fmt="omm-csv")
        assert (again.created, again.updated) == (0, 7)
        nodes = {n.id: n for n in admin.list_nodes().items}
    six = nodes["612345"]
    assert (six.tle_line1, six.name) == ("", "ISS (ZARYA) AS 612345")
    # The OMM record the broker serves reads back to the element set it stores.
    (served,) = parse_elements(six.omm_json, "omm-json").elements
    assert served == server.broker.constellation.node("612345").elements
    record = json.loads(six.omm_json)
    assert (record["NORAD_CAT_ID"], record["OBJECT_ID"]) == (612345, "1998-067A")


def test_bad_records_import_nothing_unless_skip_bad(server: ServerHandle) -> None:
    text = _break_checksum(_break_checksum(starlink_text(), 5), 27)
    with operator(server) as admin:
        with pytest.raises(InvalidArgumentError) as caught:
            admin.import_nodes(text)
        message = str(caught.value)
        assert "2 bad record(s); nothing was imported" in message
        assert "line 5:" in message
        assert "line 27:" in message
        assert "checksum" in message
        assert admin.list_nodes().items == []
        report = admin.import_nodes(text, skip_bad=True)
        assert (report.created, report.updated) == (STARLINK_COUNT - 2, 0)
        assert [(p.unit, p.line) for p in report.problems] == [("line", 5), ("line", 27)]
        assert len(admin.list_nodes().items) == STARLINK_COUNT - 2
        with pytest.raises(InvalidArgumentError, match="record 2"):
            admin.import_nodes('[{"NORAD_CAT_ID": 1}, {"NORAD_CAT_ID": 2}]', fmt="omm-json")
        with pytest.raises(InvalidArgumentError, match="no element sets"):
            admin.import_nodes("\n\n")


def test_import_limits(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    import orbitq.services.constellation.nodes as node_rules

    with operator(server) as admin:
        with pytest.raises(InvalidArgumentError, match="at most 16,777,216"):
            admin.import_nodes(" " * (16 * 1024 * 1024 + 1))
        monkeypatch.setattr(node_rules, "NODES_PER_IMPORT_MAX", 5)
        with pytest.raises(InvalidArgumentError, match="at most 5 per import"):
            admin.import_nodes(starlink_text())
        assert admin.import_nodes(starlink_text(5)).created == 5
        monkeypatch.setattr(node_rules, "NODES_PER_IMPORT_MAX", 100)
        monkeypatch.setattr(node_rules, "NODES_MAX", 19)
        with pytest.raises(ResourceExhaustedError, match="holds 5 nodes; 15 more would exceed 19"):
            admin.import_nodes(starlink_text())
        with pytest.raises(InvalidArgumentError, match="cpu_millicores is 2000000"):
            admin.import_nodes(starlink_text(), cpu_millicores=2_000_000)
        with pytest.raises(InvalidArgumentError, match="label key"):
            admin.import_nodes(starlink_text(), labels={"Bad Key": "x"})


def test_capacities_csv(server: ServerHandle) -> None:
    capacities = (
        "norad_id,cpu_millicores,storage_mb,downlink_mbps,uplink_mbps\n"
        "44714,16000,128000,400,20\n"
        "99999,1000,1000,10,1\n"
    )
    with operator(server) as admin:
        report = admin.import_nodes(starlink_text(), cpu_millicores=2000, capacities_csv=capacities)
        assert report.created == STARLINK_COUNT
        assert any("not in this import" in w and "99999" in w for w in report.warnings)
        nodes = {n.id: n for n in admin.list_nodes().items}
        named = nodes["44714"]
        assert (named.cpu_millicores, named.storage_mb, named.downlink_mbps) == (16000, 128000, 400)
        assert nodes["44718"].cpu_millicores == 2000
        bad = capacities + "44718,lots,1,1,1\n"
        # A bad capacities row stops the import even with skip_bad.
        with pytest.raises(InvalidArgumentError, match=r"capacities: .*line 4|line 4: capacities"):
            admin.import_nodes(starlink_text(), capacities_csv=bad, skip_bad=True)


def test_node_states(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.import_nodes(starlink_text())
        node = admin.set_node_state("44718", "down")
        assert (node.id, node.state) == ("44718", "down")
        assert [n.id for n in admin.list_nodes(state="down").items] == ["44718"]
        assert len(admin.list_nodes(state="ready").items) == STARLINK_COUNT - 1
        with pytest.raises(NotFoundError, match="no node '99999'"):
            admin.set_node_state("99999", "ready")
        with pytest.raises(ValueError, match="unknown node state"):
            admin.set_node_state("44718", "asleep")
    with grpc.insecure_channel(server.target) as channel:
        stub = constellation_pb2_grpc.ConstellationServiceStub(channel)
        metadata = (("authorization", f"Bearer {server.operator_key}"),)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SetNodeState(
                constellation_pb2.SetNodeStateRequest(id="44718"), metadata=metadata, timeout=10
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as caught:
            stub.UpsertStation(
                constellation_pb2.UpsertStationRequest(), metadata=metadata, timeout=10
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_tenants_read_but_cannot_write(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.import_nodes(starlink_text(3))
        admin.import_stations(stations_csv())
    with tenant_client(server) as tenant:
        assert len(tenant.list_nodes().items) == 3
        assert len(tenant.list_stations().items) == 3
        assert tenant.list_contacts().items == []
        with pytest.raises(PermissionDeniedError, match="importing nodes needs an operator"):
            tenant.import_nodes(starlink_text(3))
        with pytest.raises(PermissionDeniedError):
            tenant.set_node_state("44714", "down")
        with pytest.raises(PermissionDeniedError):
            tenant.upsert_station("x", name="X", latitude_deg=0, longitude_deg=0)
        with pytest.raises(PermissionDeniedError):
            tenant.import_stations(stations_csv())


def test_upsert_station_and_field_errors(server: ServerHandle) -> None:
    with operator(server) as admin:
        made = admin.upsert_station(
            "oslo",
            name="Oslo",
            latitude_deg=59.9,
            longitude_deg=10.7,
            antennas=2,
            labels={"country": "NO"},
        )
        assert made.created
        assert (made.station.downlink_mbps, made.station.min_elevation_deg) == (200.0, 10.0)
        again = admin.upsert_station(
            "oslo", name="Oslo", latitude_deg=59.9, longitude_deg=10.7, antennas=3
        )
        assert not again.created
        (stored,) = admin.list_stations().items
        assert (stored.antennas, stored.labels) == (3, {})
        good = {"name": "X", "latitude_deg": 0.0, "longitude_deg": 0.0}
        for change, field in (
            ({"latitude_deg": 91.0}, "'latitude'"),
            ({"longitude_deg": -180.5}, "'longitude'"),
            ({"antennas": 0}, "'antennas'"),
            ({"min_elevation_deg": 95.0}, "'min_elevation_deg'"),
            ({"min_elevation_deg": -1.0}, "'min_elevation_deg'"),
        ):
            with pytest.raises(InvalidArgumentError, match=field):
                admin.upsert_station("x", **{**good, **change})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="field 'id'"):
            admin.upsert_station("Bad Id", **good)  # type: ignore[arg-type]
        assert [s.id for s in admin.list_stations().items] == ["oslo"]


def test_station_import_is_all_or_nothing(server: ServerHandle) -> None:
    with operator(server) as admin:
        report = admin.import_stations(stations_csv())
        assert (report.created, report.updated) == (3, 0)
        again = admin.import_stations(stations_csv())
        assert (again.created, again.updated) == (0, 3)
        lines = stations_csv().splitlines()
        bad = "\n".join(
            [
                *lines,
                "north,North,X,NO,91,0,0,5,1",
                "nowhere,Nowhere,X,NO,0,0,0,5,none",
            ]
        )
        with pytest.raises(InvalidArgumentError) as caught:
            admin.import_stations(bad)
        message = str(caught.value)
        assert "2 bad station record(s); nothing was imported" in message
        assert "line 5: field 'latitude' is 91.0" in message
        assert "line 6: field 'antennas'" in message
        stations = admin.list_stations(page_size=2)
        assert [s.id for s in stations.items] == ["hartebeesthoek", "puntaarenas"]
        rest = admin.list_stations(page_size=2, page_token=stations.next_page_token)
        assert ([s.id for s in rest.items], rest.next_page_token) == (["svalbard"], "")
    svalbard = server.broker.constellation.stations()[-1]
    assert (svalbard.id, svalbard.name, svalbard.latitude_deg, svalbard.longitude_deg) == (
        "svalbard",
        "SvalSat",
        78.23,
        15.41,
    )
    assert (svalbard.altitude_m, svalbard.min_elevation_deg, svalbard.antennas) == (500, 5, 4)
    assert dict(svalbard.labels) == {"operator": "KSAT", "country": "NO"}


def test_async_client_has_the_same_calls(server: ServerHandle) -> None:
    from orbitq.clients import AsyncBrokerClient

    async def scenario() -> None:
        async with AsyncBrokerClient(server.target, server.operator_key, timeout=30) as admin:
            report = await admin.import_nodes(starlink_text(4), labels={"shell": "53"})
            assert (report.created, report.updated) == (4, 0)
            nodes = (await admin.list_nodes(labels={"shell": "53"})).items
            assert [n.id for n in nodes] == ["44714", "44718", "44723", "44724"]
            assert (await admin.set_node_state(nodes[0].id, "down")).state == "down"
            made = await admin.upsert_station(
                "oslo", name="Oslo", latitude_deg=59.9, longitude_deg=10.7
            )
            assert made.created
            assert (await admin.import_stations(stations_csv())).created == 3
            assert len((await admin.list_stations()).items) == 4
            server.broker.refresh_contacts()
            contacts = (await admin.list_contacts(node=nodes[1].id, page_size=1000)).items
            assert contacts
            assert {c.node for c in contacts} == {nodes[1].id}

    asyncio.run(scenario())
