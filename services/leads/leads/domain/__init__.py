"""The rules of the leads service: plain Python over SQLAlchemy Core, no Flask, no bus. The API
views and the event handlers both call these functions with a unit of work."""
