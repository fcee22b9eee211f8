"""orbitq.services.blobs: tenants' workload modules and inputs, and requests' results, stored
by content address on the broker's disk."""
