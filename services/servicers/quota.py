"""QuotaService over gRPC (thin; rules in orbitq.services.quota and orbitq.ledger)."""

from __future__ import annotations

import grpc

from orbitq.services import pagination
from orbitq.services.auth import current_principal
from orbitq.services.budgets import Budgets, BudgetView
from orbitq.services.quota import Quota, TransferFilter, new_operation_id
from orbitq.services.servicers import convert
from orbitq.services.usage import UsageReports, UsageRow
from orbitq.v1 import quota_pb2, quota_pb2_grpc


class QuotaServicer(quota_pb2_grpc.QuotaServiceServicer):
    def __init__(self, quota: Quota, budgets: Budgets, usage: UsageReports) -> None:
        self._quota = quota
        self._budgets = budgets
        self._usage = usage

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

    def GrantBudget(
        self, request: quota_pb2.GrantBudgetRequest, context: grpc.ServicerContext
    ) -> quota_pb2.GrantBudgetResponse:
        budgets = self._budgets.grant(
            current_principal(),
            request.tenant,
            convert.amounts(request.amounts),
            int(request.period),
            request.rollover_percent,
            request.replace,
        )
        return quota_pb2.GrantBudgetResponse(budgets=[_budget(b) for b in budgets])

    def ListBudgets(
        self, request: quota_pb2.ListBudgetsRequest, context: grpc.ServicerContext
    ) -> quota_pb2.ListBudgetsResponse:
        budgets = self._budgets.list_budgets(current_principal(), request.tenant)
        return quota_pb2.ListBudgetsResponse(budgets=[_budget(b) for b in budgets])

    def GetUsageReport(
        self, request: quota_pb2.GetUsageReportRequest, context: grpc.ServicerContext
    ) -> quota_pb2.GetUsageReportResponse:
        rows = self._usage.report(
            current_principal(), request.tenant, request.since_ns, request.until_ns, int(request.by)
        )
        return quota_pb2.GetUsageReportResponse(rows=[_usage_row(row) for row in rows])


def _budget(view: BudgetView) -> quota_pb2.Budget:
    return quota_pb2.Budget(
        id=view.id,
        tenant=view.tenant,
        kind=int(view.kind),  # type: ignore[arg-type]
        amount=view.amount,
        period=int(view.period),  # type: ignore[arg-type]
        rollover_percent=view.rollover_percent,
        created_ns=view.created_ns,
        period_start_ns=view.period_start_ns,
        period_end_ns=view.period_end_ns,
        granted=view.granted,
        carried_in=view.carried_in,
        unspent=view.unspent,
        lapses=view.lapses,
        rolls_over=view.rolls_over,
    )


def _usage_row(row: UsageRow) -> quota_pb2.UsageRow:
    return quota_pb2.UsageRow(
        tenant=row.tenant,
        group=row.group,
        kind=int(row.kind),  # type: ignore[arg-type]
        reserved=row.reserved,
        settled=row.settled,
        released=row.released,
        refunded=row.refunded,
        granted=row.granted,
        lapsed=row.lapsed,
    )
