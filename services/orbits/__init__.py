"""orbitq.services.orbits: the sky the scheduler places work into.

Owns: parsing element sets (TLE, CelesTrak OMM) and ground stations, SGP4 propagation
vectorised over satellites and times, frames (TEME -> ITRF -> station topocentric), and contact
windows refined to one second. Pure computation: no database, no gRPC.
"""
