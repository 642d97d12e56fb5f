"""Leads service: Intake, deduplication, distribution, the pool, follow-ups, conversion, campaign ROI."""
