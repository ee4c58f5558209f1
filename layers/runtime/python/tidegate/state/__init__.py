"""Windowed state: item keys (keys), what the ingest asks of a window kind's state
(protocol, panes, sessions), and the store (store: the protocol; dynamodb and memory: its
backends)."""
