"""Settings for the test suite: the production settings (DEBUG off) with a key that signs nothing real and
plain HTTP, as the test client and the live server speak it. The production switches themselves are tested
in a subprocess with a production environment (tests/test_production_settings.py)."""
import os

# Set in the environment, not only here, so subprocesses the tests start (manage.py, workbench.settings)
# read them too.
os.environ.setdefault("SECRET_KEY", "tests-only-key-that-signs-nothing-real-0123456789abcdefghij")
os.environ.setdefault("HTTPS", "false")

from workbench.settings import *  # noqa: E402,F403

# The test client and the live server serve static files from their sources, as development does.
WHITENOISE_USE_FINDERS = True
