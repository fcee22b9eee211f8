"""orbitq.services.demo: `orbitq demo`, the main story told against a real broker process.

Owns: starting and stopping a throw-away broker (`process`), printing for people
(`narrator`), and the story's chapters (`story`), which go through the public SDK only.
"""
