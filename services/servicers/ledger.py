"""LedgerService over gRPC (thin; the rules are in orbitq.services.signed_log).

Any authenticated key may call it: the log is public evidence (see signed_log).
"""

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
    def __init__(self, log: SignedLog) -> None:
        self._log = log

    def GetCheckpoint(
        self, request: ledger_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetCheckpointResponse:
        checkpoint = self._log.checkpoint(current_principal(), request.fresh)
        return ledger_pb2.GetCheckpointResponse(checkpoint=checkpoint_to_proto(checkpoint))

    def GetEntries(
        self, request: ledger_pb2.GetEntriesRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetEntriesResponse:
        current_principal()
        page = self._log.entries(request.start, request.end, request.page_size)
        return ledger_pb2.GetEntriesResponse(
            entries=[ledger_pb2.LogEntry(index=index, data=data) for index, data in page.entries],
            next_start=page.next_start,
        )

    def GetInclusionProof(
        self, request: ledger_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetInclusionProofResponse:
        current_principal()
        target = request.WhichOneof("target")
        if target == "index":
            index = request.index
        elif target == "transfer_id":
            index = self._log.transfer_entry(request.transfer_id)
        else:
            raise InvalidArgumentError("name the entry to prove: index or transfer_id")
        proof = self._log.inclusion_proof(index, request.tree_size, target == "transfer_id")
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
        current_principal()
        proof = self._log.consistency_proof(request.from_size, request.to_size)
        return ledger_pb2.GetConsistencyProofResponse(
            from_size=proof.from_size,
            to_size=proof.checkpoint.size,
            hashes=proof.hashes,
            checkpoint=checkpoint_to_proto(proof.checkpoint),
        )

    def GetPublicKey(
        self, request: ledger_pb2.GetPublicKeyRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetPublicKeyResponse:
        current_principal()
        verifier = self._log.verifier
        return ledger_pb2.GetPublicKeyResponse(
            verifier_key=verifier.verifier_key(),
            origin=self._log.origin,
            public_key=verifier.public_key_raw,
        )
