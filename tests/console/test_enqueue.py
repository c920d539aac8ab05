"""Services queue tasks by name through one small enqueue module per app: every name must be a
registered task, queued with the arguments given, and only once the transaction commits."""

import pytest
from celery import current_app

from console.alerting import enqueue as alerting_enqueue
from jobs import enqueue as jobs_enqueue
from models_registry import enqueue as registry_enqueue
from nodes import enqueue as nodes_enqueue

CASES = [
    (nodes_enqueue.probe_node, (7,), "nodes.tasks.probe_node"),
    (jobs_enqueue.reconcile_job, (8,), "jobs.tasks.reconcile_job"),
    (jobs_enqueue.run_benchmark, (9,), "jobs.benchmarks.tasks.run_benchmark"),
    (registry_enqueue.import_version, (10,), "models_registry.tasks.import_version"),
    (registry_enqueue.verify_version, (11,), "models_registry.tasks.verify_version"),
    (alerting_enqueue.evaluate, (), "console.alerting.tasks.evaluate"),
    (alerting_enqueue.dispatch, (), "console.alerting.tasks.dispatch"),
]


@pytest.mark.parametrize(("enqueue", "args", "name"), CASES, ids=[c[2] for c in CASES])
def test_each_enqueue_function_queues_its_registered_task_after_the_commit(
        db, monkeypatch, django_capture_on_commit_callbacks, enqueue, args, name):
    current_app.loader.import_default_modules()
    task = current_app.tasks[name]  # a KeyError here: the name is not a registered task
    sent = []
    monkeypatch.setattr(task, "apply_async", lambda args=None, kwargs=None, **options: sent.append(tuple(args or ())))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue(*args)
        assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert sent == [args]


PERIODIC = {"nodes.tasks.probe_node", "jobs.tasks.reconcile_job", "console.alerting.tasks.evaluate",
            "console.alerting.tasks.dispatch"}


@pytest.mark.parametrize(("enqueue", "args", "name"), CASES, ids=[c[2] for c in CASES])
def test_with_the_broker_unreachable_only_work_a_periodic_pass_also_does_is_dropped(
        db, monkeypatch, django_capture_on_commit_callbacks, enqueue, args, name):
    """Redis restarting: starting a job from a page answered 503 though the job's desired state was saved
    (the reconcile pass starts it once Redis is back); a benchmark run, which nothing else picks up, must fail."""
    from kombu.exceptions import OperationalError

    current_app.loader.import_default_modules()

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(current_app.tasks[name], "apply_async", unreachable)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue(*args)
    if name in PERIODIC:
        for callback in callbacks:
            callback()
    else:
        with pytest.raises(OperationalError):
            callbacks[0]()
