"""AdminService: tenants and API keys over gRPC (thin; rules in orbitq.services.tenants)."""

from __future__ import annotations

import grpc

from orbitq.services.auth import current_principal
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.identity.api_keys import Role
from orbitq.services.identity.tables import ApiKeyRecord, TenantRecord
from orbitq.services.servicers.convert import timestamp
from orbitq.services.tenants import Tenants
from orbitq.v1 import admin_pb2, admin_pb2_grpc, common_pb2

_ROLE_OF = {
    common_pb2.ROLE_OPERATOR: Role.OPERATOR,
    common_pb2.ROLE_TENANT: Role.TENANT,
    common_pb2.ROLE_NODE: Role.NODE,
}
_PROTO_ROLE = {role: proto for proto, role in _ROLE_OF.items()}


def tenant_to_proto(row: TenantRecord) -> admin_pb2.Tenant:
    return admin_pb2.Tenant(
        name=row.name, display_name=row.display_name, created_at=timestamp(row.created_ns)
    )


def key_to_proto(row: ApiKeyRecord) -> admin_pb2.ApiKeyInfo:
    message = admin_pb2.ApiKeyInfo(
        key_id=row.key_id,
        role=_PROTO_ROLE[row.role],
        tenant=row.tenant or "",
        node=row.node or "",
        label=row.label,
        created_at=timestamp(row.created_ns),
    )
    if row.revoked_ns is not None:
        message.revoked_at.CopyFrom(timestamp(row.revoked_ns))
    return message


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, tenants: Tenants) -> None:
        self._tenants = tenants

    def CreateTenant(
        self, request: admin_pb2.CreateTenantRequest, context: grpc.ServicerContext
    ) -> admin_pb2.CreateTenantResponse:
        row = self._tenants.create(current_principal(), request.name, request.display_name)
        return admin_pb2.CreateTenantResponse(tenant=tenant_to_proto(row))

    def ListTenants(
        self, request: admin_pb2.ListTenantsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListTenantsResponse:
        rows, next_token = self._tenants.list(
            current_principal(), request.page_size, request.page_token
        )
        return admin_pb2.ListTenantsResponse(
            tenants=[tenant_to_proto(row) for row in rows], next_page_token=next_token
        )

    def IssueApiKey(
        self, request: admin_pb2.IssueApiKeyRequest, context: grpc.ServicerContext
    ) -> admin_pb2.IssueApiKeyResponse:
        role = _ROLE_OF.get(request.role)
        if role is None:
            raise InvalidArgumentError("role must be ROLE_OPERATOR, ROLE_TENANT or ROLE_NODE")
        issued = self._tenants.issue_key(
            current_principal(), role, request.tenant, request.node, request.label
        )
        return admin_pb2.IssueApiKeyResponse(key=key_to_proto(issued.key), api_key=issued.token)

    def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: grpc.ServicerContext
    ) -> admin_pb2.RevokeApiKeyResponse:
        row = self._tenants.revoke_key(current_principal(), request.key_id)
        return admin_pb2.RevokeApiKeyResponse(key=key_to_proto(row))
