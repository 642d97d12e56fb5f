"""The service desk's rules: plain Python over the service's own tables, called by the API, the
event handlers and the scheduled jobs alike. No Flask, no bus."""
