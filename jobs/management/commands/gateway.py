"""``manage.py gateway``: the inference gateway (jobs/gateway, docs/gateway.md)."""

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the OpenAI-compatible inference gateway (API keys, routes, failover, limits, usage)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=settings.CONSOLE_GATEWAY_PORT,
                            help="port (default CONSOLE_GATEWAY_PORT, %(default)s)")

    def handle(self, *args, host, port, **options):
        from jobs.gateway.server import run

        if options.get("verbosity", 1) > 0:  # make run prints its own summary (-v 0)
            self.stdout.write(f"BooM gateway on http://{host}:{port}/v1 (Ctrl-C stops it)")
            self.stdout.flush()
        run(host, port)
