"""An exact model of the placement problem for OR-Tools CP-SAT (benchmark only).

The model is the scheduler's, in integer seconds (no discretisation): CP-SAT's interval
variables work on exact times, so the two solve the same problem and the scheduler's answer
needs no rounding to be compared. For each request r and each node n that passes the static
filters (size, selectors, state):

- x[r,n] in {0,1}, at most one n per r; maximise sum (priority + 1) * x.
- the run: start s in [not_before + U, deadline - run - D], cpu interval [s, s + run);
- storage interval [s, f) with f the finish, f <= deadline;
- the uplink: exactly one contact c of n (at an allowed station) when x: interval
  [a, a + U) inside c, a >= not_before, a + U <= s;
- the downlink (D > 0): per contact c of n (allowed station) an optional interval of length
  l_c in 1..min(D, |c|) inside c, starting >= s + run, ending <= f; sum of l_c = D when x;
- per node: cumulative cpu and storage within capacity; its link intervals never overlap
  (one radio); per station: at most `antennas` link intervals at once.

U and D are the node's uplink and downlink seconds (costs.py). Differences from the scheduler,
documented in docs/scheduler.md: CP-SAT takes at most one downlink piece per contact but of
any length, while the scheduler may take several per contact (up to 16 in all) of at least
10 s each except the last. Neither model dominates the other; on these instances the effect
is a few seconds of downlink, and the ratio is reported against CP-SAT's best bound as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

from orbitq.services.scheduler import (
    Contact,
    Node,
    Placement,
    Request,
    Station,
    downlink_seconds,
    uplink_seconds,
)


@dataclass(frozen=True)
class Instance:
    seed: int
    start: int
    end: int
    nodes: list[Node]
    stations: list[Station]
    contacts: list[Contact]
    requests: list[Request]


@dataclass(frozen=True)
class Solution:
    value: int
    bound: float
    optimal: bool
    status: str
    seconds: float
    placed: frozenset[str]


def weight(request: Request) -> int:
    return request.priority + 1


def _eligible(request: Request, node: Node) -> bool:
    if node.state != "ready":
        return False
    if request.cpu_millicores > node.cpu_millicores or request.storage_mb > node.storage_mb:
        return False
    if request.node_ids and node.id not in request.node_ids:
        return False
    return all(node.labels.get(k) == v for k, v in request.node_labels.items())


def _allowed(request: Request, station: Station) -> bool:
    if request.station_ids and station.id not in request.station_ids:
        return False
    return not request.station_countries or station.country in request.station_countries


def solve(
    instance: Instance,
    hint: list[Placement] | None = None,
    *,
    seconds: float = 10.0,
    workers: int = 2,
    fixed: list[Placement] | None = None,
) -> Solution:
    """Maximise the weighted accepted count; `hint` seeds the search, `fixed` placements are
    imposed (node and start), to ask how much could be added to a given schedule."""
    model = cp_model.CpModel()
    stations = {s.id: s for s in instance.stations}
    by_node: dict[str, list[Contact]] = {n.id: [] for n in instance.nodes}
    for contact in instance.contacts:
        by_node[contact.node].append(contact)
    cpu: dict[str, list[tuple[cp_model.IntervalVar, int]]] = {n.id: [] for n in instance.nodes}
    storage: dict[str, list[tuple[cp_model.IntervalVar, int]]] = {n.id: [] for n in instance.nodes}
    radio: dict[str, list[cp_model.IntervalVar]] = {n.id: [] for n in instance.nodes}
    antenna: dict[str, list[cp_model.IntervalVar]] = {s.id: [] for s in instance.stations}
    objective = []
    chosen: dict[tuple[str, str], cp_model.IntVar] = {}
    starts: dict[tuple[str, str], cp_model.IntVar] = {}
    t0 = instance.start
    for request in instance.requests:
        options = []
        for node in instance.nodes:
            if not _eligible(request, node):
                continue
            up = uplink_seconds(request.input_mb, node.uplink_mbps)
            down = downlink_seconds(request.output_mb, node.downlink_mbps)
            lo, hi = request.not_before - t0, request.deadline - t0
            s_lo, s_hi = lo + up, hi - request.run_seconds - down
            if s_lo > s_hi:
                continue
            ups = []
            downs = []
            for contact in by_node[node.id]:
                if not _allowed(request, stations[contact.station]):
                    continue
                c_lo, c_hi = contact.start - t0, contact.end - t0
                if max(c_lo, lo) + up <= min(c_hi, s_hi):
                    ups.append((contact, max(c_lo, lo), min(c_hi, s_hi)))
                d_lo, d_hi = max(c_lo, s_lo + request.run_seconds), min(c_hi, hi)
                if down and d_lo < d_hi:
                    downs.append((contact, d_lo, d_hi))
            if not ups or sum(d_hi - d_lo for _, d_lo, d_hi in downs) < down:
                continue
            key = (request.id, node.id)
            x = model.new_bool_var(f"x_{request.id}_{node.id}")
            s = model.new_int_var(s_lo, s_hi, f"s_{request.id}_{node.id}")
            f = model.new_int_var(s_lo + request.run_seconds + down, hi, f"f_{key}")
            held = model.new_int_var(request.run_seconds + down, hi - s_lo, f"h_{key}")
            cpu[node.id].append(
                (
                    model.new_optional_fixed_size_interval_var(s, request.run_seconds, x, ""),
                    request.cpu_millicores,
                )
            )
            storage[node.id].append(
                (model.new_optional_interval_var(s, held, f, x, ""), request.storage_mb)
            )
            ys = []
            for contact, a_lo, a_hi in ups:
                y = model.new_bool_var("")
                a = model.new_int_var(a_lo, a_hi - up, "")
                interval = model.new_optional_fixed_size_interval_var(a, up, y, "")
                model.add(a + up <= s).only_enforce_if(y)
                radio[node.id].append(interval)
                antenna[contact.station].append(interval)
                ys.append(y)
            model.add(sum(ys) == x)
            lengths = []
            for contact, d_lo, d_hi in downs:
                z = model.new_bool_var("")
                d = model.new_int_var(d_lo, d_hi - 1, "")
                length = model.new_int_var(0, min(down, d_hi - d_lo), "")
                e = model.new_int_var(d_lo, d_hi, "")
                interval = model.new_optional_interval_var(d, length, e, z, "")
                model.add(d >= s + request.run_seconds).only_enforce_if(z)
                model.add(e <= f).only_enforce_if(z)
                model.add(length >= 1).only_enforce_if(z)
                model.add(length == 0).only_enforce_if(~z)
                radio[node.id].append(interval)
                antenna[contact.station].append(interval)
                lengths.append(length)
            if down:
                model.add(sum(lengths) == down * x)
            options.append(x)
            chosen[key] = x
            starts[key] = s
            objective.append(weight(request) * x)
        if options:
            model.add_at_most_one(options)
    for node in instance.nodes:
        if cpu[node.id]:
            ivs, demands = zip(*cpu[node.id], strict=True)
            model.add_cumulative(list(ivs), list(demands), node.cpu_millicores)
            ivs, demands = zip(*storage[node.id], strict=True)
            model.add_cumulative(list(ivs), list(demands), node.storage_mb)
        if radio[node.id]:
            model.add_no_overlap(radio[node.id])
    for station in instance.stations:
        links = antenna[station.id]
        if links:
            model.add_cumulative(links, [1] * len(links), station.antennas)
    model.maximize(sum(objective))
    for placement in fixed or []:
        key = (placement.request, placement.node)
        model.add(chosen[key] == 1)
        model.add(starts[key] == placement.start - t0)
    for placement in hint or []:
        for (request_id, node_id), x in chosen.items():
            if request_id == placement.request:
                model.add_hint(x, node_id == placement.node)
                if node_id == placement.node:
                    model.add_hint(starts[(request_id, node_id)], placement.start - t0)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = seconds
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = instance.seed
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Solution(0, 0.0, False, solver.status_name(status), solver.wall_time, frozenset())
    placed = frozenset(rid for (rid, _), x in chosen.items() if solver.boolean_value(x))
    return Solution(
        value=round(solver.objective_value),
        bound=solver.best_objective_bound,
        optimal=status == cp_model.OPTIMAL,
        status=solver.status_name(status),
        seconds=solver.wall_time,
        placed=placed,
    )
