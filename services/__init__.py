"""orbitq.services: the broker.

Owns: server assembly, servicers (thin: proto <-> domain), authentication, the error-to-status
table, storage and migrations, identity, the orbital model, requests and the scheduler.

Does not own: ledger rules (orbitq.ledger) or anything a client needs (orbitq.clients).
"""
