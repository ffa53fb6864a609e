"""Sales KPIs computed from the store's call records."""
