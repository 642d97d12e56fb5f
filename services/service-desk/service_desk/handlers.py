"""What the service-desk service does with incoming events: event type -> handler(uow, envelope, payload).
Each handler runs in the transaction that records the event as processed."""

HANDLERS: dict = {}
