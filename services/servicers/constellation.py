"""ConstellationService over gRPC (thin; rules, and who may call what, in
orbitq.services.constellation).

Owns: the conversions between wire messages and the constellation's values.
"""

from __future__ import annotations

import json

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.services.agents.service import Agents
from orbitq.services.auth import current_principal
from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.constellation import (
    Capacity,
    Constellation,
    ContactQuery,
    GroundLink,
    NodeAgentInfo,
    NodeImport,
    NodeRecord,
    NodeState,
    StoredContact,
)
from orbitq.services.constellation.booking import BookingMode
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.orbits import GroundStation, InvalidStationError, omm_record
from orbitq.services.orbits.stations import DOWNLINK_MBPS_DEFAULT, UPLINK_MBPS_DEFAULT
from orbitq.services.servicers.convert import timestamp
from orbitq.v1 import constellation_pb2, constellation_pb2_grpc

_STATE_OF: dict[constellation_pb2.NodeState.ValueType, NodeState] = {
    constellation_pb2.NODE_STATE_READY: "ready",
    constellation_pb2.NODE_STATE_DEGRADED: "degraded",
    constellation_pb2.NODE_STATE_DOWN: "down",
}
PROTO_NODE_STATE = {state: proto for proto, state in _STATE_OF.items()}
_GROUND_LINK_OF: dict[constellation_pb2.GroundLink.ValueType, GroundLink] = {
    constellation_pb2.GROUND_LINK_UNSPECIFIED: "contacts",
    constellation_pb2.GROUND_LINK_CONTACTS: "contacts",
    constellation_pb2.GROUND_LINK_ALWAYS: "always",
}
PROTO_GROUND_LINK: dict[GroundLink, constellation_pb2.GroundLink.ValueType] = {
    "contacts": constellation_pb2.GROUND_LINK_CONTACTS,
    "always": constellation_pb2.GROUND_LINK_ALWAYS,
}
_FORMAT_OF = {
    constellation_pb2.ELEMENT_FORMAT_UNSPECIFIED: "auto",
    constellation_pb2.ELEMENT_FORMAT_AUTO: "auto",
    constellation_pb2.ELEMENT_FORMAT_TLE: "tle",
    constellation_pb2.ELEMENT_FORMAT_OMM_CSV: "omm-csv",
    constellation_pb2.ELEMENT_FORMAT_OMM_JSON: "omm-json",
}
_PLAN_FORMAT_OF = {
    constellation_pb2.CONTACT_PLAN_FORMAT_UNSPECIFIED: "auto",
    constellation_pb2.CONTACT_PLAN_FORMAT_AUTO: "auto",
    constellation_pb2.CONTACT_PLAN_FORMAT_JSON: "json",
    constellation_pb2.CONTACT_PLAN_FORMAT_CSV: "csv",
}
_PLAN_MODE_OF: dict[constellation_pb2.ContactPlanMode.ValueType, BookingMode] = {
    constellation_pb2.CONTACT_PLAN_MODE_UNSPECIFIED: "replace",
    constellation_pb2.CONTACT_PLAN_MODE_REPLACE: "replace",
    constellation_pb2.CONTACT_PLAN_MODE_RESTRICT: "restrict",
}


def _state(
    value: constellation_pb2.NodeState.ValueType, field: str, *, optional: bool
) -> NodeState | None:
    if value == constellation_pb2.NODE_STATE_UNSPECIFIED and optional:
        return None
    state = _STATE_OF.get(value)
    if state is None:
        raise InvalidArgumentError(f"{field} must be NODE_STATE_READY, _DEGRADED or _DOWN")
    return state


def _ns(message: Timestamp) -> int:
    return message.seconds * NANOS_PER_SECOND + message.nanos


def _capacity(message: constellation_pb2.NodeCapacity) -> Capacity:
    return Capacity(
        message.cpu_millicores, message.storage_mb, message.downlink_mbps, message.uplink_mbps
    )


def node_to_proto(node: NodeRecord) -> constellation_pb2.Node:
    element = node.elements
    message = constellation_pb2.Node(
        id=node.id,
        name=node.name,
        norad_id=node.norad_id,
        tle_line1=element.line1 or "",
        tle_line2=element.line2 or "",
        epoch=timestamp(to_ns(element.epoch)),
        capacity=constellation_pb2.NodeCapacity(
            cpu_millicores=node.capacity.cpu_millicores,
            storage_mb=node.capacity.storage_mb,
            downlink_mbps=node.capacity.downlink_mbps,
            uplink_mbps=node.capacity.uplink_mbps,
        ),
        labels=dict(node.labels),
        state=PROTO_NODE_STATE[node.state],
        updated_at=timestamp(node.updated_ns),
    )
    if element.line1 is None:
        message.omm_json = json.dumps(omm_record(element), sort_keys=True)
    if node.agent is not None:
        message.agent.CopyFrom(agent_to_proto(node.agent))
    return message


def agent_to_proto(agent: NodeAgentInfo) -> constellation_pb2.NodeAgent:
    message = constellation_pb2.NodeAgent(
        enrolled=True,
        ground_link=PROTO_GROUND_LINK[agent.ground_link],
        public_key=agent.public_key,
        enrolled_at=timestamp(agent.enrolled_ns),
        fuel_per_core_second=agent.fuel_per_core_second,
        runtime=agent.runtime,
        key_entry_index=agent.key_entry_index,
    )
    if agent.last_heartbeat_ns is not None:
        message.last_heartbeat_at.CopyFrom(timestamp(agent.last_heartbeat_ns))
    return message


def station_to_proto(station: GroundStation) -> constellation_pb2.Station:
    return constellation_pb2.Station(
        id=station.id,
        name=station.name,
        latitude_deg=station.latitude_deg,
        longitude_deg=station.longitude_deg,
        altitude_m=station.altitude_m,
        min_elevation_deg=station.min_elevation_deg,
        antennas=station.antennas,
        labels=dict(station.labels),
        downlink_mbps=station.downlink_mbps,
        uplink_mbps=station.uplink_mbps,
    )


def station_from_proto(message: constellation_pb2.Station) -> GroundStation:
    try:
        return GroundStation(
            id=message.id,
            name=message.name,
            latitude_deg=message.latitude_deg,
            longitude_deg=message.longitude_deg,
            altitude_m=message.altitude_m,
            min_elevation_deg=message.min_elevation_deg,
            antennas=message.antennas,
            labels=dict(message.labels),
            downlink_mbps=message.downlink_mbps or DOWNLINK_MBPS_DEFAULT,
            uplink_mbps=message.uplink_mbps or UPLINK_MBPS_DEFAULT,
        )
    except InvalidStationError as error:
        raise InvalidArgumentError(
            f"station {message.id[:63]!r}: {'; '.join(error.problems)}"
        ) from None


def contact_to_proto(contact: StoredContact) -> constellation_pb2.Contact:
    return constellation_pb2.Contact(
        id=contact.id,
        node=contact.node,
        station=contact.station,
        aos=timestamp(contact.aos_ns),
        los=timestamp(contact.los_ns),
        max_elevation_deg=contact.max_elevation_deg,
    )


class ConstellationServicer(constellation_pb2_grpc.ConstellationServiceServicer):
    def __init__(self, constellation: Constellation, agents: Agents) -> None:
        self._constellation = constellation
        self._agents = agents

    def ImportNodes(
        self, request: constellation_pb2.ImportNodesRequest, context: grpc.ServicerContext
    ) -> constellation_pb2.ImportNodesResponse:
        fmt = _FORMAT_OF.get(request.format)
        if fmt is None:
            raise InvalidArgumentError(f"format: unknown element format {request.format}")
        report = self._constellation.import_nodes(
            current_principal(),
            NodeImport(
                text=request.text,
                fmt=fmt,
                default_capacity=_capacity(request.default_capacity),
                labels=dict(request.labels),
                skip_bad=request.skip_bad,
                capacities_csv=request.capacities_csv,
            ),
        )
        return constellation_pb2.ImportNodesResponse(
            created=report.created,
            updated=report.updated,
            problems=[
                constellation_pb2.ImportProblem(
                    line=problem.line, message=problem.message, unit=problem.unit
                )
                for problem in report.problems
            ],
            stale=list(report.stale),
            warnings=list(report.warnings),
        )

    def ListNodes(
        self, request: constellation_pb2.ListNodesRequest, context: grpc.ServicerContext
    ) -> constellation_pb2.ListNodesResponse:
        nodes, next_token = self._constellation.list_nodes(
            current_principal(),
            dict(request.labels),
            _state(request.state, "state", optional=True),
            request.page_size,
            request.page_token,
        )
        return constellation_pb2.ListNodesResponse(
            nodes=[node_to_proto(node) for node in nodes], next_page_token=next_token
        )

    def SetNodeState(
        self, request: constellation_pb2.SetNodeStateRequest, context: grpc.ServicerContext
    ) -> constellation_pb2.SetNodeStateResponse:
        state = _state(request.state, "state", optional=False)
        assert state is not None
        node = self._constellation.set_node_state(current_principal(), request.id, state)
        return constellation_pb2.SetNodeStateResponse(node=node_to_proto(node))

    def UpsertStation(
        self, request: constellation_pb2.UpsertStationRequest, context: grpc.ServicerContext
    ) -> constellation_pb2.UpsertStationResponse:
        principal = current_principal()
        source = request.WhichOneof("source")
        if source == "stations_text":
            created, updated = self._constellation.import_stations(principal, request.stations_text)
            return constellation_pb2.UpsertStationResponse(
                created_count=created, updated_count=updated
            )
        if source != "station":
            raise InvalidArgumentError("give a station, or stations_text with a station list")
        station, is_new = self._constellation.upsert_station(
            principal, station_from_proto(request.station)
        )
        return constellation_pb2.UpsertStationResponse(
            station=station_to_proto(station),
            created=is_new,
            created_count=int(is_new),
            updated_count=int(not is_new),
        )

    def ListStations(
        self, request: constellation_pb2.ListStationsRequest, context: grpc.ServicerContext
    ) -> constellation_pb2.ListStationsResponse:
        stations, next_token = self._constellation.list_stations(
            current_principal(), request.page_size, request.page_token
        )
        return constellation_pb2.ListStationsResponse(
            stations=[station_to_proto(station) for station in stations],
            next_page_token=next_token,
        )

    def ListContacts(
        self, request: constellation_pb2.ListContactsRequest, context: grpc.ServicerContext
    ) -> constellation_pb2.ListContactsResponse:
        query = ContactQuery(
            node=request.node,
            station=request.station,
            start_ns=_ns(request.start) if request.HasField("start") else None,
            end_ns=_ns(request.end) if request.HasField("end") else None,
        )
        contacts, next_token = self._constellation.list_contacts(
            current_principal(), query, request.page_size, request.page_token
        )
        return constellation_pb2.ListContactsResponse(
            contacts=[contact_to_proto(contact) for contact in contacts],
            next_page_token=next_token,
        )

    def CreateEnrollmentToken(
        self,
        request: constellation_pb2.CreateEnrollmentTokenRequest,
        context: grpc.ServicerContext,
    ) -> constellation_pb2.CreateEnrollmentTokenResponse:
        ground_link = _GROUND_LINK_OF.get(request.ground_link)
        if ground_link is None:
            raise InvalidArgumentError(
                f"ground_link: unknown value {request.ground_link} (GROUND_LINK_CONTACTS or"
                " GROUND_LINK_ALWAYS)"
            )
        made = self._agents.create_enrollment_token(
            current_principal(), request.node, ground_link, request.ttl_seconds
        )
        return constellation_pb2.CreateEnrollmentTokenResponse(
            token=made.token, expires_at=timestamp(made.expires_ns)
        )

    def ImportContactPlan(
        self,
        request: constellation_pb2.ImportContactPlanRequest,
        context: grpc.ServicerContext,
    ) -> constellation_pb2.ImportContactPlanResponse:
        fmt = _PLAN_FORMAT_OF.get(request.format)
        mode = _PLAN_MODE_OF.get(request.default_mode)
        if fmt is None or mode is None:
            raise InvalidArgumentError(
                "format and default_mode must be values of ContactPlanFormat and ContactPlanMode"
            )
        report = self._constellation.import_contact_plan(
            current_principal(), request.text, fmt, mode, dry_run=request.dry_run
        )
        return constellation_pb2.ImportContactPlanResponse(
            windows=report.windows,
            stations=list(report.stations),
            replaced=report.replaced,
            warnings=list(report.warnings),
            not_visible=report.not_visible,
            dry_run=report.dry_run,
        )
