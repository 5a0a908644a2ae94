"""The review console: FastAPI routes, server-rendered pages (templates/) and a little JavaScript (static/)."""
