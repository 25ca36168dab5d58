import os

from django.core.wsgi import get_wsgi_application

from workbench.lazy_imports import defer_drf_test_module

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
# Before the application loads (the API modules import drf-spectacular): what serving never needs stays out of
# every web process's memory.
defer_drf_test_module()
application = get_wsgi_application()
