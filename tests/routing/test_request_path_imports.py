"""The labeling request path does not load plotly: routing.services imports the pilot's replay, not its charts."""

import subprocess
import sys


def test_routing_services_and_the_labeling_views_do_not_import_plotly():
    code = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'workbench.settings'); django.setup();"
        "import routing.services, routing.views, routing.api, labeling.api;"
        "print('plotly' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
