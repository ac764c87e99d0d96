"""gunicorn's settings for the portal (read from the working directory: `make run`, the image, compose).

Threaded workers: a client that sends its request slowly holds one thread, not a whole worker, so
a few slow clients cannot stall every page. In production a buffering proxy (deploy/nginx.conf)
takes the slow clients first and hands gunicorn only complete requests.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("PORTAL_WEB_WORKERS", "2"))
threads = int(os.environ.get("PORTAL_WEB_THREADS", "8"))
# The master loads Django once and the workers are forks of it: they start at once and share its
# memory, where each would otherwise import and set up Django again (about a second of CPU each).
preload_app = True
# Seconds a worker may go silent before it is restarted (a request stuck that long is lost).
timeout = int(os.environ.get("PORTAL_WEB_TIMEOUT", "30"))
