"""orbitq.services.blobs: tenants' workload modules and inputs, and requests' results, stored by
content address on the broker's disk (docs/agent.md, "Workloads, inputs and blobs").

| module | owns |
| --- | --- |
| `digests` | "sha256:<hex>" content addresses |
| `files` | the files: durable writes, partial results, the layout under <data_dir>/blobs/ |
| `modules` | the checks of a WebAssembly module before it is stored |
| `store` | `BlobStore`: files and rows in step, references, limits, retention |
| `uploads` | `ResultUploads`: resumable, idempotent, checked result uploads |
| `service` | `Blobs`: PushWorkload, PushInput, GetBlob and who may call them |

Does not own: who may fetch or upload as a node (orbitq.services.agents) or what a request
names (orbitq.services.requests checks it through `BlobLookup`).
"""
