import datetime as dt
import itertools

import pytest
from django.contrib.auth import get_user_model

from experts import services

_usernames = itertools.count(1)


@pytest.fixture
def make_user(db):
    def make(username: str | None = None):
        return get_user_model().objects.create_user(username=username or f"user{next(_usernames)}")

    return make


@pytest.fixture
def make_expert(make_user):
    """An expert built through the service; defaults: Berlin, English, medical/radiology, 09-17 every day."""

    def make(name: str = "Ada", **kw):
        kw.setdefault("time_zone", "Europe/Berlin")
        kw.setdefault("languages", ["en"])
        kw.setdefault("expertise", {"medical/radiology": 3})
        kw.setdefault("shifts", [(wd, dt.time(9), dt.time(17)) for wd in range(7)])
        for path in dict(kw["expertise"]):
            services.domain_ensure(path=path)
        return services.expert_create(user=make_user(), display_name=name, **kw)

    return make
