"""The portal's pages, one module per object: dashboards, servers, run_pages (a run's pages)."""
