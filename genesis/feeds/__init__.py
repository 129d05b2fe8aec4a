"""Feeds: venue-specific parsing at the edge, normalised event arrays inside."""
