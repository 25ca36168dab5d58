"""Fixtures shared by the routing tests."""

import pytest

from labeling.signals import items_ingested
from routing.receivers import route_ingested_items

RECEIVER_UID = "routing.route_ingested_items"


@pytest.fixture
def unrouted_ingest():
    """Ingest without the routing receiver, leaving items fresh (status new) for the test to route."""
    items_ingested.disconnect(dispatch_uid=RECEIVER_UID)
    yield
    items_ingested.connect(route_ingested_items, dispatch_uid=RECEIVER_UID)
