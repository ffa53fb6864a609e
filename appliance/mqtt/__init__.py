"""MQTT: call summaries, alerts, device status and KPI snapshots for central servers.

``messages`` builds the versioned payloads and their topics; ``outbox`` keeps every message
on disk until the broker acknowledges it; ``client`` connects and drains the outbox in
order; ``feeds`` turns the appliance's events and periodic checks into messages;
``fleet`` is the central side that aggregates many boxes.
"""
