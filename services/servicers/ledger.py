"""LedgerService over gRPC (thin; the rules, and who may call what, are in
orbitq.services.signed_log)."""

from __future__ import annotations

import grpc

from orbitq.ledger.checkpoint import Checkpoint
from orbitq.services.auth import current_principal
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.signed_log import SignedLog
from orbitq.v1 import ledger_pb2, ledger_pb2_grpc


def checkpoint_to_proto(checkpoint: Checkpoint) -> ledger_pb2.Checkpoint:
    return ledger_pb2.Checkpoint(
        note=checkpoint.note,
        origin=checkpoint.origin,
        size=checkpoint.size,
        root_hash=checkpoint.root_hash,
    )


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, log: SignedLog, ticket_verifier_key: str) -> None:
        self._log = log
        self._ticket_verifier_key = ticket_verifier_key

    def GetCheckpoint(
        self, request: ledger_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetCheckpointResponse:
        checkpoint = self._log.checkpoint(current_principal(), request.fresh)
        return ledger_pb2.GetCheckpointResponse(checkpoint=checkpoint_to_proto(checkpoint))

    def GetEntries(
        self, request: ledger_pb2.GetEntriesRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetEntriesResponse:
        page = self._log.entries(current_principal(), request.start, request.end, request.page_size)
        return ledger_pb2.GetEntriesResponse(
            entries=[ledger_pb2.LogEntry(index=index, data=data) for index, data in page.entries],
            next_start=page.next_start,
        )

    def GetInclusionProof(
        self, request: ledger_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetInclusionProofResponse:
        target = request.WhichOneof("target")
        if target == "index":
            proof = self._log.inclusion_proof(current_principal(), request.index, request.tree_size)
        elif target == "transfer_id":
            proof = self._log.transfer_inclusion_proof(
                current_principal(), request.transfer_id, request.tree_size
            )
        else:
            raise InvalidArgumentError("name the entry to prove: index or transfer_id")
        return ledger_pb2.GetInclusionProofResponse(
            index=proof.index,
            tree_size=proof.checkpoint.size,
            hashes=proof.hashes,
            entry=proof.entry,
            checkpoint=checkpoint_to_proto(proof.checkpoint),
        )

    def GetConsistencyProof(
        self, request: ledger_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetConsistencyProofResponse:
        proof = self._log.consistency_proof(current_principal(), request.from_size, request.to_size)
        return ledger_pb2.GetConsistencyProofResponse(
            from_size=proof.from_size,
            to_size=proof.checkpoint.size,
            hashes=proof.hashes,
            checkpoint=checkpoint_to_proto(proof.checkpoint),
        )

    def GetPublicKey(
        self, request: ledger_pb2.GetPublicKeyRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetPublicKeyResponse:
        verifier = self._log.public_key(current_principal())
        return ledger_pb2.GetPublicKeyResponse(
            verifier_key=verifier.verifier_key(),
            origin=verifier.name,
            public_key=verifier.public_key_raw,
            ticket_verifier_key=self._ticket_verifier_key,
        )
