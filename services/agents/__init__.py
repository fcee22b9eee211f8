"""orbitq.services.agents: the broker's side of the node agents."""
