"""Run in a child process pointed at an embedded console's data folder (CONSOLE_DATA_DIR, no DATABASE_URL):
adds ``count`` SSH nodes of 8 accelerators (``manage.py collect --simulate`` makes up their telemetry), a
credential, and an API token for the admin; prints the token and the credential's id as JSON. Used by
tests/integration/test_embedded_concurrency.py."""

import json
import sys

import django


def main(count: int, closed_port: int) -> dict:
    from django.contrib.auth.models import User

    from console.core.models import ApiToken
    from nodes.models import Accelerator, Node
    from nodes.services import create_credential
    from tests.integration.console_seed import private_key_pem

    credential = create_credential(name="sim-key", username="ops", private_key=private_key_pem(), passphrase=None)
    # Reachable address, closed port: the worker's periodic probes fail at once and write their status.
    nodes = Node.objects.bulk_create([Node(name=f"sim-{i:03d}", address="127.0.0.1", ssh_port=closed_port,
                                           transport="ssh", credential=credential, status="online",
                                           telemetry_interval_s=1, accelerator_count=8) for i in range(count)])
    Accelerator.objects.bulk_create([Accelerator(node=node, index=j, vendor="nvidia", kind="gpu", model="H100",
                                                 uuid=f"SIM-{node.pk}-{j}", memory_total_bytes=80 << 30)
                                     for node in nodes for j in range(8)])
    token = ApiToken.objects.create(user=User.objects.get(username="admin")).key
    return {"token": token, "credential": credential.pk}


if __name__ == "__main__":
    django.setup()
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
