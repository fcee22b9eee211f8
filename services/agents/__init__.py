"""orbitq.services.agents: the broker's side of the node agents (docs/agent.md).

Owns: enrollment (one-time tokens; EnrollNode binding a node's Ed25519 key, appending it to
the signed log and issuing the node's credential), contact gating, tickets (signed with the
broker's separate ticket key, made once per placement, pulled at the uplink contact), what a
node may fetch and upload, usage receipts (verified, then settled against the receipt, or
refused and recorded), heartbeats and node health. `Agents` (service.py) is the entry point;
its methods take the caller's Principal and check it first.

| module | owns |
| --- | --- |
| `service` | `Agents`: who may call what; the entry point of the servicers and jobs |
| `tokens` | enrollment tokens: format, life, one per node |
| `enrollment` | EnrollNode's rules, key rotation |
| `evidence` | the NodeKeyEnrolled entry of a key |
| `ticket_key` | `ticket.key` and `TicketSigner` |
| `gating` | contact gating and the next contacts |
| `tickets` | due tickets, made once per placement; pulled marks; blobs a node may fetch |
| `receipts` | ReportReceipt: checks, the end of the request, refusals |
| `health` | heartbeats, ticket refusals, missed contacts |
| `tables` | the tables' handles |

Dependency rule: agents imports requests, constellation, blobs and the scheduler's costs,
never the scheduling loop (which asks it, through `PulledTickets`, which tickets were pulled).

Does not own: the ticket and receipt formats (orbitq.ledger.tickets, .receipts), the ledger's
evidence entries (orbitq.ledger.store), the files of blobs (orbitq.services.blobs) or
transport (orbitq.services.servicers.agent).
"""
