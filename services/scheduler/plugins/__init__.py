"""Scheduler plugins: one module per plugin, each with a NAME and its exported reason strings.

PreFilter: node_resources, deadline, node_selector, station_selector, station_antennas.
Filter:    node_state, node_agent (when agents are required), node_selector, node_resources,
           station_selector.
Fit:       uplink, capacity, downlink, storage_hold, just_in_time.
Score:     earliest_completion, packing.
Reserve:   capacity, station_antennas.
"""
