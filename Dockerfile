# The production image of the Relay Test Portal: gunicorn serving portal.wsgi, static files collected
# at build time and served by whitenoise, running as an unprivileged user. The same image runs the
# Celery worker, beat and the canary receiver: docker-compose.yml gives each its command.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORTAL_VAR_DIR=/var/lib/portal \
    STATIC_ROOT=/app/static-root

RUN useradd --system --uid 10001 --home-dir /var/lib/portal --create-home portal

WORKDIR /app
# The runtime packages only, at the versions the tests ran with (requirements.lock pins them).
COPY requirements.txt requirements.lock ./
RUN pip install -r requirements.txt -c requirements.lock

COPY --chown=root:root . .
RUN mkdir -p "$STATIC_ROOT" && chown portal "$STATIC_ROOT"

USER portal
# collectstatic reads settings but needs no database, broker or production secret.
RUN SECRET_KEY=collectstatic-only CELERY_BROKER_URL=redis://unused python manage.py collectstatic --noinput

EXPOSE 8000
# Healthy while Django answers at all: a 4xx (for example a host name outside ALLOWED_HOSTS) still
# proves the server is up; a 5xx or no answer does not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD \
    python -c "import http.client as h; c = h.HTTPConnection('127.0.0.1', 8000, timeout=4); c.request('GET', '/accounts/login/'); assert c.getresponse().status < 500"

# Threaded workers (gunicorn.conf.py); in compose, nginx in front buffers slow clients.
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
