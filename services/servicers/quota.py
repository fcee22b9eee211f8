"""QuotaService over gRPC (thin; rules in orbitq.services.quota and orbitq.ledger)."""

from __future__ import annotations

import grpc

from orbitq.services import pagination
from orbitq.services.auth import current_principal
from orbitq.services.quota import Quota, TransferFilter, new_operation_id
from orbitq.services.servicers import convert
from orbitq.v1 import quota_pb2, quota_pb2_grpc


class QuotaServicer(quota_pb2_grpc.QuotaServiceServicer):
    def __init__(self, quota: Quota) -> None:
        self._quota = quota

    def Mint(
        self, request: quota_pb2.MintRequest, context: grpc.ServicerContext
    ) -> quota_pb2.MintResponse:
        operation = convert.operation_id(request.id, "id") or new_operation_id()
        outcomes, accounts = self._quota.mint(
            current_principal(), request.tenant, convert.amounts(request.amounts), operation
        )
        return quota_pb2.MintResponse(
            outcomes=[convert.outcome_to_proto(outcome) for outcome in outcomes],
            accounts=[convert.account_to_proto(account) for account in accounts],
        )

    def GetBalances(
        self, request: quota_pb2.GetBalancesRequest, context: grpc.ServicerContext
    ) -> quota_pb2.GetBalancesResponse:
        accounts = self._quota.balances(
            current_principal(), request.tenant, request.system, request.at_timestamp_ns
        )
        return quota_pb2.GetBalancesResponse(
            accounts=[convert.account_to_proto(account) for account in accounts]
        )

    def Transfer(
        self, request: quota_pb2.TransferRequest, context: grpc.ServicerContext
    ) -> quota_pb2.TransferResponse:
        operation = convert.operation_id(request.id, "id") or new_operation_id()
        outcomes = self._quota.transfer(
            current_principal(),
            request.from_tenant,
            request.to_tenant,
            convert.amounts(request.amounts),
            operation,
        )
        return quota_pb2.TransferResponse(
            outcomes=[convert.outcome_to_proto(outcome) for outcome in outcomes]
        )

    def ListTransfers(
        self, request: quota_pb2.ListTransfersRequest, context: grpc.ServicerContext
    ) -> quota_pb2.ListTransfersResponse:
        query = TransferFilter(
            tenant=request.tenant,
            account_id=request.account_id,
            kind=int(convert.kind(request.kind, "kind") or 0),
            code=request.code,
            since_ns=request.since_ns,
            until_ns=request.until_ns,
        )
        size = pagination.page_size(request.page_size)
        before = pagination.decode_token(request.page_token, query, pagination.INT)
        stored = self._quota.list_transfers(
            current_principal(), query, size + 1, int(before) if before is not None else None
        )
        next_token = ""
        if len(stored) > size:
            stored = stored[:size]
            next_token = pagination.encode_token(stored[-1].transfer.timestamp_ns, query)
        return quota_pb2.ListTransfersResponse(
            transfers=[convert.transfer_to_proto(item.transfer) for item in stored],
            next_page_token=next_token,
        )

    def CreateTransfers(
        self, request: quota_pb2.CreateTransfersRequest, context: grpc.ServicerContext
    ) -> quota_pb2.CreateTransfersResponse:
        transfers = convert.transfers_from_request(list(request.transfers))
        outcomes = self._quota.create_transfers(current_principal(), transfers)
        return quota_pb2.CreateTransfersResponse(
            outcomes=[convert.outcome_to_proto(outcome) for outcome in outcomes]
        )
