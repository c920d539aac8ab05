"""The fuzz goal of issue 13 (deliverable 1): schemathesis over every operation of ``/api/schema/``, as an
admin, through the console's WSGI application, finds no server error. A few examples per operation keep it
near a minute; the stateful part follows the links schemathesis infers between operations (an object
created by a POST is read, changed and deleted by the operations of its path)."""

from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings

from console.core.models import ApiToken

pytestmark = pytest.mark.django_db

EXAMPLES = 4
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))


@pytest.fixture
def wsgi_app():
    """The console's WSGI application, in the test's transaction (as Django's test client: the connection is
    not closed at the end of each request)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_headers(make_user, settings):
    settings.ALLOWED_HOSTS = ["*"]
    settings.CONSOLE_API_THROTTLE_USER = ""
    settings.CONSOLE_API_THROTTLE_ANON = ""
    return {"Authorization": f"Token {ApiToken.objects.create(user=make_user('admin', 'fuzz-admin')).key}"}


def test_no_operation_answers_a_server_error(admin_headers, wsgi_app):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=admin_headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    errors, statuses = [], Counter()
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def fuzz(case):
            response = case.call(headers=admin_headers)
            statuses[response.status_code // 100 * 100] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code}\n"
                f"{case.as_curl_command(headers=admin_headers)}\n{response.text[:1500]}")

        try:
            fuzz()
        except AssertionError as error:
            errors.append(str(error).splitlines()[0] + "\n" + "\n".join(str(error).splitlines()[1:3]))
    assert not errors, "\n\n".join(errors)
    # The token works and the fuzzer gets past validation: many answers are 2xx, none 401.
    assert statuses[200] > 20 and 401 not in statuses, statuses
    print(f"{len(operations)} operations, answers by class: {dict(statuses)}")


def test_linked_operations_answer_no_server_error(admin_headers, wsgi_app):
    """Sequences of calls along the links schemathesis infers (a POST's answer feeds the ``{id}`` of the
    operations on that object)."""
    from hypothesis.stateful import run_state_machine_as_test

    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=admin_headers)
    machine = schema.as_state_machine()
    links = [name for name in vars(machine) if "_200_" in name and not name.startswith("RANDOM")]
    assert len(links) > 50, "schemathesis inferred too few links between the operations"

    class Fuzz(machine):
        """Each example starts from the same database: what one sequence created is rolled back before the
        next, so a sequence's data (what the lists answer, which links apply) does not depend on earlier ones."""

        def __init__(self):
            super().__init__()
            self._savepoint = transaction.savepoint()

        def teardown(self):
            transaction.savepoint_rollback(self._savepoint)
            super().teardown()

        def get_call_kwargs(self, case):
            return {"headers": admin_headers}

        def validate_response(self, response, case, **kwargs):
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code}\n{response.text[:1500]}")

    # No shrinking: the machine's data depends on what the database holds, so a replay cannot be the same
    # run (hypothesis would then report FlakyStrategyDefinition instead of the server error it found).
    run_state_machine_as_test(Fuzz, settings=settings(max_examples=15, stateful_step_count=6, deadline=None,
                                                      derandomize=True, database=None, phases=[Phase.generate],
                                                      report_multiple_bugs=False,
                                                      suppress_health_check=list(HealthCheck)))
