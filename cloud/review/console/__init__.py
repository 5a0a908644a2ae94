"""The review console: FastAPI routers, server-rendered pages (templates/), a little JavaScript (static/)."""
