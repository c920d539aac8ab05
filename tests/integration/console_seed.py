"""Run in a child process pointed at a console's data folder (CONSOLE_DATA_DIR, DATABASE_URL):
``seed`` fills it with one of everything a backup must bring back, a simulator engine running on node
``local`` included, and prints what it made as JSON; ``reconcile <job id>`` runs reconciler passes and
prints the job's instance. Used by tests/integration/test_backup_restore.py."""

import json
import sys
import time

import django


def private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def instance_of(job_id: int) -> dict:
    from jobs.models import Instance

    instance = Instance.objects.get(job_id=job_id)
    return {"pid": instance.pid, "state": instance.state, "restart_count": instance.restart_count,
            "run": instance.run, "key": instance.key, "port": instance.port}


def reconcile_until_running(job_id: int, timeout: float = 60.0) -> dict:
    from jobs import reconciler

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconciler.reconcile_job(job_id)
        state = instance_of(job_id)
        if state["state"] == "running":
            return state
        time.sleep(0.2)
    raise SystemExit(f"the instance did not become ready: {instance_of(job_id)}")


def seed() -> dict:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from console.alerting.models import AlertRule
    from jobs.gateway.services import create_key
    from nodes.services import create_credential, probe_node, register_local_node
    from tests.jobs import factories as jf

    call_command("migrate", "--noinput", verbosity=0)
    admin = User.objects.create_superuser("admin", password="not-a-real-password-1")
    node = register_local_node()
    probe_node(node.pk)
    credential = create_credential(name="seed-key", username="ops", private_key=private_key_pem(), passphrase=None)
    AlertRule.objects.create(name="seed rule", series="node.cpu_percent", threshold=95)
    create_key(admin, name="seed app")
    job = jf.job(name="seed-sim", engine="simulator", model_version=jf.version(status="registered"), replicas=1,
                 accelerators_per_replica=0, desired_state="running",
                 options={"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1})
    return {"job": job.pk, "instance": reconcile_until_running(job.pk), "credential": credential.pk,
            "private_key": credential.private_key()}


def main() -> None:
    django.setup()
    if sys.argv[1] == "seed":
        result = seed()
    elif sys.argv[1] == "reconcile":
        from jobs import reconciler

        job_id = int(sys.argv[2])
        for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3):
            reconciler.reconcile_job(job_id)
            time.sleep(0.2)
        result = instance_of(job_id)
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
