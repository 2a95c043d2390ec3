"""The rules. Every door (web, htmx partials, API, CLI, jobs, imports) calls these.

Service functions take plain values and an Actor, return models or plain
values, and raise the domain errors of app.services.errors. They commit
their own unit of work, audit row included.
"""
