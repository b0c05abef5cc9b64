"""Fixtures of the fault suite: the module's stack (tests/faults/stack.py) and an editor token."""

import pytest

from tests.faults.stack import running_stack
from tests.support import require_postgresql


@pytest.fixture(scope="module")
def stack(tmp_path_factory, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        require_postgresql()
    with running_stack(tmp_path_factory.mktemp("faults")) as running:
        yield running


@pytest.fixture
def token(transactional_db):
    from rest_framework.authtoken.models import Token

    from tests.factories import make_editor

    return Token.objects.create(user=make_editor()).key
