"""The portal's pages, one module per object: dashboards, servers, runs."""
