"""The order in which a cycle tries pending requests.

Owns: `queue_key`, a total order: priority (higher first), then fair share (the tenant with
less recent consumption first, as passed in by the caller), then earliest deadline, then
earliest submission, then request id. Ids are unique, so no two requests tie and the order is
deterministic.

Does not own: how consumption is measured (the caller's `tenant_usage`, e.g. tokens settled
over the last day, in any unit as long as it is the same for every tenant).
"""

from __future__ import annotations

from collections.abc import Mapping

from orbitq.services.scheduler.model import Request

QueueKey = tuple[int, float, int, int, str]


def queue_key(request: Request, tenant_usage: Mapping[str, float]) -> QueueKey:
    return (
        -request.priority,
        float(tenant_usage.get(request.tenant, 0.0)),
        request.deadline,
        request.submitted_at,
        request.id,
    )
