"""Service-desk service: Tickets, queues and routing, SLA timers, escalation, onboarding, satisfaction."""
