"""Prometheus metrics of the live channels (``junction_realtime_*``).

The gauges count what a process holds open; with several web processes a scrape adds up
those of the processes still running (``livesum``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge(
    "junction_realtime_connections",
    "Open live connections, by transport (cable, sse).",
    ["transport"],
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge(
    "junction_realtime_subscriptions",
    "Active channel subscriptions, by channel.",
    ["channel"],
    multiprocess_mode="livesum",
)
MESSAGES_SENT = Counter(
    "junction_realtime_messages_sent_total",
    "Broadcast messages written to clients, by transport.",
    ["transport"],
)
CLIENTS_DROPPED = Counter(
    "junction_realtime_clients_dropped_total",
    "Clients disconnected by the server, by reason (slow_client, too_many_connections, ...).",
    ["reason"],
)
BROADCASTS = Counter(
    "junction_realtime_broadcasts_total",
    "Messages published to the broker by this process.",
)
