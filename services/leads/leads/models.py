"""The leads service's tables (its own database)."""
from crm_shared.db import messaging_tables, new_metadata

metadata = new_metadata()
outbox, processed_events = messaging_tables(metadata)
