"""The ticketing provider integration: events, slots and zones pulled from an XML feed."""
