"""Budgets: tokens granted to a tenant at the start of every period that lapse at its end
unless rolled over (docs/operator.md, "Budgets").

Owns: `periods` (pure period arithmetic and the rollover rule) and `service` (granting,
listing, and the job that opens and closes periods with ledger transfers).
"""

from __future__ import annotations

from orbitq.services.budgets.periods import Closing, Period, close, next_start, period_start
from orbitq.services.budgets.service import BudgetRunReport, Budgets, BudgetView

__all__ = [
    "BudgetRunReport",
    "BudgetView",
    "Budgets",
    "Closing",
    "Period",
    "close",
    "next_start",
    "period_start",
]
