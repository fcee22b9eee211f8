"""orbitq benchmarks: each module measures a figure and the physical limit in the same run."""
