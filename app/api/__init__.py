"""The thin HTTP API: job status, creation, edits and re-runs for the Rails backend (`/internal/*`),
health and readiness probes, and Prometheus metrics. `uvicorn app.api.main:app`."""
