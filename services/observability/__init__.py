"""orbitq.services.observability: what an operator watches a running broker through.

Owns: request ids (one per RPC, carried by every log line of the call), structured JSON logs
(`orbitq serve --log-format json`), and Prometheus metrics (`orbitq serve --metrics HOST:PORT`):
the RPC interceptor that counts and times calls, and collectors that read the broker's state
when scraped. docs/operator.md, "Metrics and logs", lists every metric.
Does not own: what is logged (each module logs its own events) or the broker's state.
"""
