"""orbitq.ledger: the rules of the quota ledger and of its signed log.

Owns: accounts and transfers (the TigerBeetle-style state machine), the RFC 6962 Merkle log,
C2SP signed checkpoints, proofs and their verification. Everything importable from here is pure
(no database, no network) so that clients can verify a broker without pulling in the server;
the one module doing I/O, `orbitq.ledger.store`, must be imported explicitly.

Does not own: who may call what (orbitq.services), transport (gRPC), or the clock.
"""
