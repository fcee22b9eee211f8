"""`Constellation.changed_nodes`: exactly the nodes written after a world revision, on SQLite
and PostgreSQL — what lets the scheduler read one row per state change instead of every node."""

from __future__ import annotations

from orbitq.services.constellation import NodeImport
from tests.conftest import BrokerHandle
from tests.integration.sky import starlink_text
from tests.requests.sky import OPERATOR


def test_only_the_nodes_written_since_a_revision_are_read(broker: BrokerHandle) -> None:
    constellation = broker.broker.constellation
    constellation.import_nodes(OPERATOR, NodeImport(text=starlink_text(5)))
    imported = constellation.world_version().world_revision
    ids = [node.id for node in constellation.nodes()]
    assert len(ids) == 5
    assert [n.id for n in constellation.changed_nodes(imported - 1)] == ids, "the import"
    assert constellation.changed_nodes(imported) == []
    constellation.set_node_state(OPERATOR, ids[2], "down")
    after = constellation.world_version().world_revision
    assert after == imported + 1
    changed = constellation.changed_nodes(imported)
    assert [(n.id, n.state) for n in changed] == [(ids[2], "down")]
    constellation.set_node_state(OPERATOR, ids[0], "degraded")
    assert [n.id for n in constellation.changed_nodes(imported)] == [ids[0], ids[2]]
    assert [n.id for n in constellation.changed_nodes(after)] == [ids[0]]
