"""The sales rules, plain Python: no Flask, no kombu. The API and the event handlers both call them."""
