"""HTTP API: FastAPI app, metrics and auth."""
