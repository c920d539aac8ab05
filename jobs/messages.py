"""The sentences jobs, instances and benchmarks record (reasons, exit causes, details), registered in
console.core.messages so that pages render them in the reader's language. Each template is the exact
English the code writes; keep them in step when a reason changes (tests/console/test_system_text.py
renders each kind in Chinese)."""

from django.utils.translation import gettext_noop

from console.core import messages

MESSAGES = {
    # The reconciler: placing, starting, checking, stopping instances.
    "instance.scaled_down": gettext_noop("scaled down"),
    "instance.job_stopped": gettext_noop("job stopped"),
    "instance.placement_raced": gettext_noop("placement raced with another; retrying"),
    "instance.rolling_restart": gettext_noop("rolling restart to generation %(generation)s"),
    "instance.placed": gettext_noop("placed on %(node)s"),
    "instance.placed_with": gettext_noop("placed on %(node)s with %(accelerators)s"),
    "instance.no_port": gettext_noop("no free port in %(low)s-%(high)s on %(node)s"),
    "instance.executor_failed": gettext_noop("the executor failed: %(error)s"),
    "instance.starting": gettext_noop("starting"),
    "instance.readopted": gettext_noop("re-adopted a running process"),
    "instance.start_interrupted": gettext_noop("the start was interrupted; starting again"),
    "instance.ready": gettext_noop("ready"),
    "instance.not_ready": gettext_noop("not ready after %(seconds)s s: %(why)s"),
    "instance.unhealthy": gettext_noop("unhealthy (%(failures)s failed checks): %(why)s"),
    "instance.restarting_now": gettext_noop("%(cause)s; restarting at once"),
    "instance.restarting_in": gettext_noop("%(cause)s; restarting in %(delay)s s"),
    "instance.pid_reused": gettext_noop("the recorded pid now belongs to another process"),
    "instance.vanished": gettext_noop("the process disappeared without an exit status"),
    "instance.node_lost": gettext_noop("node %(node)s unreachable for more than %(seconds)s s; moving the replica"),
    "node.not_answering_reconciler": gettext_noop("not answering the reconciler: %(reason)s"),
    # Exit causes (jobs.executors.base.ProcessStatus.exit_reason).
    "exit.oom": gettext_noop("killed by the OOM killer (exit code %(code)s)"),
    "exit.signal": gettext_noop("killed by %(signal)s (exit code %(code)s)"),
    "exit.not_found": gettext_noop("command not found (exit code 127)"),
    "exit.code": gettext_noop("exited with code %(code)s"),
    "exit.signal_number": gettext_noop("signal %(number)s"),
    # Readiness checks (jobs.runtime.check_ready).
    "ready.timeout": gettext_noop("readiness check timed out after %(seconds)s s (%(url)s)"),
    "ready.failed": gettext_noop("readiness check failed: %(exception)s (%(url)s)"),
    "ready.status": gettext_noop("readiness check answered %(code)s (%(url)s)"),
    # A job's derived state (jobs.services.derive_job_state).
    "job.stopping": gettext_noop("stopping %(count)s instance(s)"),
    "job.partly_serving": gettext_noop("%(serving)s of %(replicas)s replicas serve"),
    "job.waiting": gettext_noop("waiting for placement"),
    # Placement (jobs.placement: written through gettext, stored in the language of the worker).
    "placement.no_selector_node": gettext_noop("no online node matches the node selector"),
    "placement.no_node": gettext_noop("no node is online"),
    "placement.needs_accelerators": gettext_noop("the %(engine)s engine needs accelerators"),
    "placement.nodes": gettext_noop("a replica needs %(needed)d nodes; %(available)d are available"),
    "placement.no_room": gettext_noop("no room: a replica needs %(per_acc)d free %(vendor)s accelerator(s) on each of "
                                      "%(nodes)d node(s); nodes with enough: %(fitting)d"),
    "placement.too_small": gettext_noop("%(count)d free accelerator(s) lack the %(gib)s GiB each needs"),
    # The model's files on an instance's node (jobs.weights): the detail of a preparing instance, or why it failed.
    "weights.copying": gettext_noop("copying the model's files to node %(node)s: %(status)s"),
    "weights.copying_percent": gettext_noop("copying the model's files to node %(node)s: %(status)s (%(percent)s)"),
    "weights.ready": gettext_noop("the model's files are ready on node %(node)s"),
    "weights.copy_failed": gettext_noop("the copy of the model to node %(node)s failed: %(reason)s"),
    "weights.copy_removing": gettext_noop("the copy of the model on node %(node)s is being removed"),
    "weights.cannot_copy": gettext_noop("the model cannot be copied to node %(node)s: %(reason)s"),
    # Why a recommendation does not fit now (jobs.recommend).
    "recommend.no_engine": gettext_noop("no engine serves %(format)s weights on %(vendor)s accelerators"),
    "recommend.quantization": gettext_noop("%(engine)s cannot serve the %(quantization)s quantization on %(vendor)s "
                                           "accelerators (nor can %(others)s)"),
    "recommend.quantization_alone": gettext_noop("%(engine)s cannot serve the %(quantization)s quantization on "
                                                 "%(vendor)s accelerators (nor can any other engine)"),
    "recommend.no_estimate": gettext_noop("the version has no memory estimate (import it): one accelerator assumed"),
    "recommend.multinode": gettext_noop("%(engine)s cannot run a replica over %(nodes)s nodes"),
    "recommend.not_enough": gettext_noop("not enough free accelerators: %(replicas)s replica(s) need %(wanted)s "
                                         "node(s) with %(per_acc)s free %(vendor)s accelerator(s) each; %(fitting)s "
                                         "node(s) have them now"),
    "recommend.no_room": gettext_noop("not enough free accelerators: %(replicas)s replica(s) need %(wanted)s node(s) "
                                      "with room each; %(fitting)s node(s) have them now"),
    "recommend.toolkit": gettext_noop("node %(node)s has %(label)s %(have)s; %(engine)s needs %(minimum)s or newer"),
    "recommend.driver": gettext_noop("node %(node)s has driver %(have)s; %(engine)s needs driver %(minimum)s or newer"),
    "recommend.verify_first": gettext_noop("the weights are not on %(names)s and cannot be copied there: verify the "
                                           "version first"),
    "recommend.no_copy": gettext_noop("the weights are not on %(names)s and cannot be copied there: no node holds "
                                      "a ready copy"),
    "recommend.version_unusable": gettext_noop("the version is %(status)s: jobs may not use it"),
    # Benchmarks (jobs.benchmarks).
    "benchmark.cancelled_queued": gettext_noop("cancelled before it started"),
    "benchmark.cancelled_stale": gettext_noop("cancelled; its worker had stopped reporting"),
    "benchmark.worker_died": gettext_noop("the worker running it stopped before it ended"),
    "benchmark.dataset": gettext_noop("cannot read the dataset %(path)s: %(error)s"),
    "benchmark.generator_failed": gettext_noop("the load generator failed: %(error)s"),
    "benchmark.cancelled": gettext_noop("cancelled by an operator"),
    "benchmark.gave_up": gettext_noop("concurrency %(concurrency)s: gave up: %(reason)s"),
    "benchmark.all_failed": gettext_noop("concurrency %(concurrency)s: every request failed (%(error)s)"),
    "benchmark.some_failed": gettext_noop("%(count)s request(s) failed; see errors by kind"),
    "benchmark.not_openai": gettext_noop("GET %(url)s answered HTTP %(code)s: not an OpenAI-compatible endpoint "
                                         "(or name the served model)"),
    "benchmark.no_models": gettext_noop("GET %(url)s lists no models: not an OpenAI-compatible endpoint"),
    "benchmark.no_answer": gettext_noop("%(url)s did not answer within 10 s"),
}

#: The exceptions a readiness check names (``%(exception)s``), as words of the catalogue.
EXCEPTION_WORDS = (
    gettext_noop("ConnectError"), gettext_noop("ConnectTimeout"), gettext_noop("ReadTimeout"),
    gettext_noop("ReadError"), gettext_noop("RemoteProtocolError"), gettext_noop("WriteError"),
)


def register() -> None:
    """Register the sentences above and every engine's log hints (console.apps calls this)."""
    from jobs.engines.hints import COMMON_HINTS
    from jobs.engines.registry import ENGINES

    messages.register(MESSAGES)
    hints = list(COMMON_HINTS)
    for engine in ENGINES.values():
        hints.extend(engine.hints)
    messages.register({f"hint:{hint.cause}": hint.cause for hint in hints})
