"""Common code for the CRM services. Services import from here; nothing here imports a service."""
