"""Settings of the Relay Test Portal: everything from the environment (see README, "Settings").

Every default runs on one machine: SQLite, a filesystem Celery broker, one worker.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal import env
from relaytests.probe.environment import probe_queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.string("PORTAL_VAR_DIR", str(BASE_DIR / "var")))
# The data folder holds the secret key and the SQLite database: no one else may look inside.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
if VAR_DIR.stat().st_uid == os.getuid():
    VAR_DIR.chmod(0o700)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in VAR_DIR."""
    key = env.string("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        _create_secret_key(path)
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it and a new key is generated.")
    return key


def _create_secret_key(path: Path) -> None:
    """Several processes may start together on a fresh folder (compose, `make run`): each writes a
    complete key to its own private file, then links it into place, which fails if another was
    first. The key file thus appears complete and with mode 0600, or not at all; all read the same."""
    own = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
            file.flush()
            os.fsync(file.fileno())
        os.link(own, path)
    except FileExistsError:
        pass  # another process was first: its key stands
    finally:
        own.unlink()


def _private_file(path: Path) -> None:
    """Creates PATH with mode 0600 unless it exists (SQLite gives its -wal and -shm files the same mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


SECRET_KEY = _secret_key()
DEBUG = env.boolean("DEBUG", False)
ALLOWED_HOSTS = env.words("ALLOWED_HOSTS", "localhost 127.0.0.1 [::1]")
CSRF_TRUSTED_ORIGINS = env.words("CSRF_TRUSTED_ORIGINS")

# ---- HTTPS: PORTAL_PRODUCTION=1 turns each on (README, "Behind TLS"); each can still be set alone ----
PORTAL_PRODUCTION = env.boolean("PORTAL_PRODUCTION", False)
SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", PORTAL_PRODUCTION)
SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if PORTAL_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", PORTAL_PRODUCTION)
SECURE_HSTS_PRELOAD = env.boolean("SECURE_HSTS_PRELOAD", PORTAL_PRODUCTION)
SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", PORTAL_PRODUCTION)
CSRF_COOKIE_SECURE = env.boolean("CSRF_COOKIE_SECURE", PORTAL_PRODUCTION)
# Behind a proxy the portal sees the proxy's address and scheme. Trust its headers only when told
# the portal is reachable through it alone: X-Forwarded-Proto says whether the client used HTTPS, and
# the right-most X-Forwarded-For address (the one the proxy set) is the client for the sign-in
# lockout and the password-reset limit.
PORTAL_BEHIND_TLS_PROXY = env.boolean("PORTAL_BEHIND_TLS_PROXY", False)
PORTAL_BEHIND_PROXY = env.boolean("PORTAL_BEHIND_PROXY", PORTAL_BEHIND_TLS_PROXY)
if PORTAL_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The portal's public address for links in test messages and pages; empty: the address each request
# reached the portal at (`make run` sets it from PORTAL_LISTEN).
SITE_URL = env.string("SITE_URL").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "relaytests",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into the lockout page
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "relaytests.context_processors.organisation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env.string("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=env.integer("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] != ":memory:":
        _private_file(Path(DATABASES["default"]["NAME"]))
    # SQLite as an embedded database for several processes (web, workers, canary receiver): WAL lets
    # readers go on while one writes, IMMEDIATE takes the write lock when a transaction begins (so two
    # writers queue instead of one failing on lock upgrade), and a writer waits up to the busy timeout
    # for the lock instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.number("SQLITE_BUSY_TIMEOUT", 30.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# ---- Single sign-on (relaytests/sso.py, docs/operations.md): the web server in front signs users in ----
PORTAL_REMOTE_USER = env.boolean("PORTAL_REMOTE_USER", False)
# The request.META key of the user name: REMOTE_USER under mod_wsgi, HTTP_X_REMOTE_USER for a header
# X-Remote-User that the proxy sets (and strips from what the client sent).
PORTAL_REMOTE_USER_HEADER = env.string("PORTAL_REMOTE_USER_HEADER", "REMOTE_USER")
PORTAL_REMOTE_USER_PERSISTENT = env.boolean("PORTAL_REMOTE_USER_PERSISTENT", False)
# The request.META key of the entitlements that name departments; empty: memberships are kept by hand.
PORTAL_REMOTE_USER_DEPARTMENT_HEADER = env.string("PORTAL_REMOTE_USER_DEPARTMENT_HEADER")
PORTAL_SSO_DEPARTMENT_PREFIX = env.string("PORTAL_SSO_DEPARTMENT_PREFIX")
PORTAL_SSO_CENTRAL_IT_VALUE = env.string("PORTAL_SSO_CENTRAL_IT_VALUE")
# ---- Single sign-on by OpenID Connect (mozilla-django-oidc; relaytests/sso.py, docs/operations.md) ----
PORTAL_OIDC = env.boolean("PORTAL_OIDC", False)
# What the sign-in page's button says: "Sign in with <label>".
PORTAL_OIDC_LABEL = env.string("PORTAL_OIDC_LABEL", "the university's single sign-on")
# The claim that names the account (sub is stable; preferred_username or eppn read better).
PORTAL_OIDC_USERNAME_CLAIM = env.string("PORTAL_OIDC_USERNAME_CLAIM", "sub")
# The claim whose values name departments, as PORTAL_SSO_DEPARTMENT_PREFIX + slug; empty: kept by hand.
PORTAL_OIDC_DEPARTMENT_CLAIM = env.string("PORTAL_OIDC_DEPARTMENT_CLAIM")
# The provider's endpoints and this portal's client at the provider, under the library's own names.
for _name in (
    "OIDC_RP_CLIENT_ID",
    "OIDC_RP_CLIENT_SECRET",
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
):
    globals()[_name] = env.string(_name)
    if PORTAL_OIDC and not globals()[_name]:
        raise ImproperlyConfigured(f"PORTAL_OIDC=true needs {_name}.")
OIDC_RP_SIGN_ALGO = env.string("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env.string("OIDC_RP_SCOPES", "openid email profile")
OIDC_TIMEOUT = env.number("OIDC_TIMEOUT", 10.0)  # a provider that hangs costs a sign-in seconds, no more
OIDC_USE_PKCE = True
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
# Sign-in with the portal's own user names and passwords.
PORTAL_LOCAL_LOGIN = env.boolean("PORTAL_LOCAL_LOGIN", True)
if not (PORTAL_LOCAL_LOGIN or PORTAL_REMOTE_USER or PORTAL_OIDC):
    raise ImproperlyConfigured(
        "PORTAL_LOCAL_LOGIN=false needs PORTAL_REMOTE_USER or PORTAL_OIDC: else no one can sign in."
    )
if PORTAL_REMOTE_USER:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "relaytests.sso.PersistentRemoteUserMiddleware"
        if PORTAL_REMOTE_USER_PERSISTENT
        else "relaytests.sso.RemoteUserMiddleware",
    )
# ---- Sign-in lockout (django-axes): failures counted per user name and, apart, per client address ----
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out sign-in before the password check
    *(["relaytests.sso.RemoteUserBackend"] if PORTAL_REMOTE_USER else []),
    *(["relaytests.sso.OIDCBackend"] if PORTAL_OIDC else []),
    *(["django.contrib.auth.backends.ModelBackend"] if PORTAL_LOCAL_LOGIN else []),
]
AXES_FAILURE_LIMIT = env.integer("PORTAL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env.integer("PORTAL_LOGIN_COOLOFF", 3600))
AXES_LOCKOUT_PARAMETERS = [["username"], ["ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no banner on every start (it would break the relaytest command's one-line output)
if PORTAL_BEHIND_PROXY:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    AXES_IPWARE_PROXY_ORDER = "right-most"
# Password-reset requests: at most this many an hour per client address and per e-mail address.
PORTAL_PASSWORD_RESETS_PER_HOUR = env.integer("PORTAL_PASSWORD_RESETS_PER_HOUR", 5)
# ---- The JSON API (Django REST framework, relaytests/api/): personal tokens or the session ----
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "relaytests.api.authentication.ApiTokenAuthentication",  # first: its header names the 401's scheme
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["relaytests.api.throttling.PerTokenThrottle"],
    "DEFAULT_PAGINATION_CLASS": "relaytests.api.pagination.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Throttling counts unsigned requests by address: the right-most forwarded one behind our proxy only.
    "NUM_PROXIES": 1 if PORTAL_BEHIND_PROXY else 0,
}
# Requests one token (or one signed-in session, or one address without either) may make, as "N/period".
PORTAL_API_RATE = env.rate("PORTAL_API_RATE", "120/minute")
# Who may scrape /metrics (relaytests/metrics.py): clients in these networks, or with this bearer token.
PORTAL_METRICS_NETWORKS = env.networks("PORTAL_METRICS_NETWORKS", "127.0.0.0/8 ::1/128")
PORTAL_METRICS_TOKEN = env.string("PORTAL_METRICS_TOKEN")
SPECTACULAR_SETTINGS = {
    "TITLE": "Relay Test Portal API",
    "DESCRIPTION": "Servers, runs, their relaytest/1 reports and verdict changes, as the portal shows them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"Verdict": "relaytests.models.Verdict"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "relaytests.api.schema.error_responses",
    ],
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.string("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.string("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one before collectstatic
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Shared by every process that shares VAR_DIR (web workers, containers on one volume): the password-reset
# limits count the same requests wherever they land.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
    }
}

EMAIL_BACKEND = env.string("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.string("EMAIL_HOST", "localhost")
EMAIL_PORT = env.integer("EMAIL_PORT", 25)
# The probe settings that the relaytest command reads as well, from the same variables (with DEFAULT_FROM_EMAIL).
_PROBE = env.probe_defaults()
DEFAULT_FROM_EMAIL = _PROBE.contact
# Seconds a mail server may take to answer: one that hangs delays an alert, never a worker for ever.
EMAIL_TIMEOUT = env.number("EMAIL_TIMEOUT", 30.0)
# Central IT's address: every alert goes there too, and no preference turns it off.
PORTAL_ALERT_EMAIL = env.string("PORTAL_ALERT_EMAIL")

# ---- Celery: an embedded filesystem broker by default, Redis in production ----
CELERY_BROKER_URL = env.string("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "relaytests.filesystem_broker:Transport"  # writes each message in one step
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # else Kombu writes ./control in the work tree
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# The vantages a run probes from (docs/operations.md, Vantage), its own first: the run goes to the
# queue probe.<vantage> of the first, and one part of it to the queue of each further one, where the
# workers of that vantage (RELAYTEST_VANTAGE) take them.
RELAYTEST_VANTAGES = env.labels("RELAYTEST_VANTAGES", "outside")
CELERY_TASK_ROUTES = {
    "relaytests.tasks.run_suite": {"queue": probe_queue(RELAYTEST_VANTAGES[0])},  # a part names its own
    # connects out, as a probe does, from the run's own vantage
    "relaytests.tasks.discover_servers": {"queue": probe_queue(RELAYTEST_VANTAGES[0])},
}
# A dead broker must cost the page seconds, not minutes: bounded connect and publish retries.
CELERY_BROKER_CONNECTION_TIMEOUT = env.number("CELERY_BROKER_CONNECTION_TIMEOUT", 3.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Runs: task limits (a soft limit ends the run interrupted), the heartbeat, and the reaper's limits.
RELAYTEST_TASK_SOFT_LIMIT = env.integer("RELAYTEST_TASK_SOFT_LIMIT", 1200)
RELAYTEST_TASK_HARD_LIMIT = env.integer("RELAYTEST_TASK_HARD_LIMIT", 1260)
RELAYTEST_HEARTBEAT_EVERY = env.number("RELAYTEST_HEARTBEAT_EVERY", 20.0)
RELAYTEST_STALE_AFTER = env.integer("RELAYTEST_STALE_AFTER", 300)
RELAYTEST_QUEUED_STALE_AFTER = env.integer("RELAYTEST_QUEUED_STALE_AFTER", 6 * 3600)
RELAYTEST_REAP_EVERY = env.number("RELAYTEST_REAP_EVERY", 60.0)
RELAYTEST_BUSY_RETRY_DELAY = env.integer("RELAYTEST_BUSY_RETRY_DELAY", 30)
RELAYTEST_BUSY_RETRIES = env.integer("RELAYTEST_BUSY_RETRIES", 60)
# Scheduled re-tests (relaytests/schedule.py): the portal's period (seconds; 0 = off, departments and
# servers may override it), how often beat sweeps for due servers, and how many scheduled runs may wait.
RELAYTEST_RETEST_EVERY = env.integer("RELAYTEST_RETEST_EVERY", 7 * 24 * 3600)
RELAYTEST_SCHEDULE_SWEEP_EVERY = env.integer("RELAYTEST_SCHEDULE_SWEEP_EVERY", 600)
RELAYTEST_SCHEDULE_MAX_QUEUED = env.integer("RELAYTEST_SCHEDULE_MAX_QUEUED", 20)
# Discovery (relaytests/unregistered.py): the MX hosts of more domains than the scope's and the registered
# ones, and the optional sweep of the scope networks: its ports, its rate (connections a second), the
# largest network it sweeps, and how often beat sends it.
RELAYTEST_DISCOVERY_DOMAINS = [d.strip(".").lower() for d in env.words("RELAYTEST_DISCOVERY_DOMAINS")]
RELAYTEST_DISCOVERY_SWEEP = env.boolean("RELAYTEST_DISCOVERY_SWEEP", False)
RELAYTEST_DISCOVERY_PORTS = env.integers("RELAYTEST_DISCOVERY_PORTS", "25 587")
RELAYTEST_DISCOVERY_RATE = env.number("RELAYTEST_DISCOVERY_RATE", 10.0)
RELAYTEST_DISCOVERY_MAX_ADDRESSES = env.integer("RELAYTEST_DISCOVERY_MAX_ADDRESSES", 65536)
RELAYTEST_DISCOVERY_EVERY = env.integer("RELAYTEST_DISCOVERY_EVERY", 24 * 3600)

# ---- The probe (names are documented in README, "Settings") ----
RELAYTEST_PROBE_HELO = _PROBE.probe_helo
RELAYTEST_SOURCE_ADDRESS = _PROBE.source_address
RELAYTEST_CANARY_DOMAIN = _PROBE.canary_domain
RELAYTEST_CANARY_SECRET = _PROBE.canary_secret or SECRET_KEY
# Where `manage.py canary` listens (HOST:PORT); in production port 25 of the canary domain's MX host.
RELAYTEST_CANARY_LISTEN = env.string("RELAYTEST_CANARY_LISTEN", "127.0.0.1:2525")
# Workers complete DATA to the canary address of every accepted vector; the run then waits this many
# seconds for the messages (status awaiting_delivery) before a finalising task settles its verdict.
RELAYTEST_CANARY_ENABLED = env.boolean("RELAYTEST_CANARY_ENABLED", True)
RELAYTEST_CANARY_WAIT = env.integer("RELAYTEST_CANARY_WAIT", 900)
RELAYTEST_COMMAND_TIMEOUT = _PROBE.command_timeout
RELAYTEST_RUN_DEADLINE = _PROBE.run_deadline
# Seconds one host may take once it delays every reply (a tarpit): the vectors left are not run.
RELAYTEST_HOST_BUDGET = _PROBE.host_budget
# Hosts one worker process tests at once, across all its runs (one event loop each).
RELAYTEST_MAX_HOSTS_IN_FLIGHT = env.integer("RELAYTEST_MAX_HOSTS_IN_FLIGHT", 64)
RELAYTEST_INTERNAL_NETWORKS = list(_PROBE.internal_networks)
# Where this process's probe tests from, as its reports say: outside (the default), or e.g. inside.
RELAYTEST_VANTAGE = _PROBE.vantage
# Scope of the portal: which targets may be registered (names by suffix, addresses by network).
RELAYTEST_SCOPE_DOMAINS = env.domains("RELAYTEST_SCOPE_DOMAINS")
RELAYTEST_SCOPE_NETWORKS = env.networks("RELAYTEST_SCOPE_NETWORKS")
# Names under these domains may resolve outside SCOPE_NETWORKS (mail hosted elsewhere on purpose).
RELAYTEST_SCOPE_NAMES_ANYWHERE = env.domains("RELAYTEST_SCOPE_NAMES_ANYWHERE")
# A target with more addresses is refused at registration (each address is one host probed at once).
RELAYTEST_MAX_ADDRESSES = env.integer("RELAYTEST_MAX_ADDRESSES", 16)
# The ports a target may name: SMTP, submissions, submission and the common alternative.
RELAYTEST_ALLOWED_PORTS = env.integers("RELAYTEST_ALLOWED_PORTS", "25 465 587 2525")
# Loopback, private and link-local addresses are refused unless this is set or SCOPE_NETWORKS holds them.
RELAYTEST_ALLOW_PRIVATE = env.boolean("RELAYTEST_ALLOW_PRIVATE", False)
RELAYTEST_RUNS_PER_HOUR = env.integer("RELAYTEST_RUNS_PER_HOUR", 20)
# The DNS resolver ("host:port") for the scope check and the probe; empty: the system's resolver.
RELAYTEST_RESOLVER = _PROBE.resolver
# DNS blocklist zones each public address is looked up in; empty: the engine's default list.
RELAYTEST_DNSBL_ZONES = list(_PROBE.dnsbl_zones)
# A run's whole report (transcripts) is kept this many days, then trimmed to its summary (daily, on beat).
RELAYTEST_EVIDENCE_DAYS = env.integer("RELAYTEST_EVIDENCE_DAYS", 180)

# ---- The organisation running the portal: shown on every page and in the guidance ----
PORTAL_ORG_NAME = env.string("PORTAL_ORG_NAME", "Example University")
PORTAL_POLICY_URL = env.string("PORTAL_POLICY_URL")
PORTAL_RELAY_HUB = env.string("PORTAL_RELAY_HUB", "relay.example.edu")
PORTAL_HELP_CONTACT = env.string("PORTAL_HELP_CONTACT")
PORTAL_HELP_URL = env.string("PORTAL_HELP_URL")
# How often a run's page asks whether the run moved on (milliseconds; a small 304 while it did not).
PORTAL_LIVE_POLL_MS = env.integer("PORTAL_LIVE_POLL_MS", 2000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.string("LOG_LEVEL", "INFO")},
}
