"""The contacts' wire form kept by the NodeAgentService servicer: the same as converting afresh."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.constellation import StoredContact
from orbitq.services.servicers.agent import ContactsToProto, contacts_to_proto

_contacts = st.builds(
    StoredContact,
    id=st.sampled_from(["c1", "c2", "c3"]),
    node=st.just("44713"),
    station=st.sampled_from(["svalbard", "troll"]),
    aos_ns=st.integers(0, 2**62),
    los_ns=st.integers(0, 2**62),
    max_elevation_deg=st.floats(0, 90),
)


@given(st.lists(st.lists(_contacts, max_size=8), max_size=6))
def test_kept_conversion_is_the_fresh_one(calls: list[list[StoredContact]]) -> None:
    # Repeated, overlapping and changed contacts (same id, other times) across calls.
    convert = ContactsToProto()
    for contacts in calls:
        assert convert(contacts) == contacts_to_proto(contacts)
