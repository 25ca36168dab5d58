"""gunicorn settings for a workbench web host (docs/deploy.md): `gunicorn -c deploy/gunicorn.conf.py workbench.wsgi`.

Every value comes from the environment (the systemd unit reads /etc/workbench/env), so one file serves
every host; the variables are listed in docs/deploy.md, "gunicorn".
"""
import ctypes
import gc
import os

# Behind the reverse proxy on the same host; a proxy on another host needs the host's private address here.
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
# Processes (each holds a database connection per thread). gunicorn's own WEB_CONCURRENCY variable.
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# Two or more threads per process select the gthread worker, which must stay the default: its main thread
# tells the arbiter it is alive while requests run, where the sync worker (threads = 1) does so only
# between requests and is killed `timeout` seconds into any long export stream (tests/test_deploy.py).
# Requests that wait on the database also overlap without another process's memory.
threads = max(2, int(os.environ.get("GUNICORN_THREADS", "2")))
# A worker whose main loop is silent this long is killed and restarted (a hung process, not a long
# request: with gthread a streaming export may run for as long as it keeps writing).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM (systemctl stop/restart) running requests get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Load the application once in the master and fork: the workers share its memory pages. A code upgrade
# then needs a restart (systemctl restart), not a HUP.
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() in {"1", "true", "yes", "on"}


def pre_fork(server, worker):
    """Before each worker is forked: move every object the master holds (the preloaded application) out of
    the garbage collector's reach, once the garbage is gone (frozen garbage would never be freed). A
    collection in a worker would otherwise write to those objects' headers and so copy every page they share
    with the master. Then hand the C heap's free pages back (bench/memory.py: docs/deploy.md, "Memory")."""
    build_url_resolver()
    build_first_use_caches()
    gc.collect()
    gc.freeze()
    release_free_heap()


def build_url_resolver() -> bool:
    """With the application preloaded, import the URLconf and every view and API module it names, and fill
    the resolver's tables, in the master: each worker would otherwise do it on its first request, in memory
    of its own. Shared from the master, they cost the server 29-46 MiB less (PSS after bench/memory.py's
    warm-up), though each process's RSS, which counts shared pages in full, grows by a little. Returns
    False when Django is not loaded in the master (GUNICORN_PRELOAD off)."""
    from django.apps import apps

    if not apps.ready:
        return False
    from django.urls import NoReverseMatch, get_resolver, reverse

    reverse("home")  # the first reverse fills every included resolver's tables
    # A name in a namespace ("admin:index") is reversed through a resolver of its own, built and filled on the
    # first reverse in that namespace; a name that is not there builds it as well.
    for namespace in _namespaces(get_resolver()):
        try:
            reverse(f"{namespace}:-")
        except NoReverseMatch:
            pass
    return get_resolver()._populated


def _namespaces(resolver, prefix=""):
    for namespace, (_, included) in resolver.namespace_dict.items():
        yield prefix + namespace
        yield from _namespaces(included, f"{prefix}{namespace}:")


def build_first_use_caches() -> bool:
    """What Django otherwise builds in each worker on first use, built once in the master: the template
    engine with every tag library, its loaders and context processors (the first page a worker renders imports
    them), the static files storage and every model's field lists. With the URL namespaces' resolvers
    (build_url_resolver), some 5 MiB less PSS after bench/memory.py's warm-up and the same RSS. Returns False
    when Django is not loaded in the master."""
    from django.apps import apps

    if not apps.ready:
        return False
    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.template import engines

    for backend in engines.all():  # a Django engine imports every tag library when it is created
        if engine := getattr(backend, "engine", None):
            engine.template_loaders, engine.template_context_processors  # noqa: B018 (cached on first read)
    staticfiles_storage.base_url  # noqa: B018 (a LazyObject: the first attribute read creates the storage)
    for model in apps.get_models():
        model._meta.get_fields()
    return True


def release_free_heap() -> bool:
    """Loading the application frees much of what it allocates (each module's compiled file is read into a
    buffer, for one), and glibc keeps those pages in its heap: the master holds them, and every worker's RSS
    counts them too, since a fork maps all of the master's memory. malloc_trim(0) gives them back (1 MiB in
    the master, so some 5 MiB of the summed RSS). Returns False on a C library without it."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim(0)
    return True

# Recycle a worker after this many requests (with jitter so they do not all restart at once), so slow
# growth of one process's memory cannot build up.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10

# Access log: "-" is stdout (journald under systemd). The client is the proxy's X-Forwarded-For; %(M)s is
# the time taken in milliseconds.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Temporary files of the worker heartbeat in RAM: a slow disk must not make gunicorn kill healthy workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
proc_name = "workbench-web"
# gunicorn 25.1+ opens a control socket for `gunicornc` under $HOME/.gunicorn/, which is the read-only
# /srv/workbench for the service user ("Control server error: Permission denied" at every start). systemctl
# is the control here; older gunicorn ignores the setting.
control_socket_disable = True
