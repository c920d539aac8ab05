"""``manage.py load_catalog``: load the starter catalog (models_registry.catalog). Idempotent."""

from django.core.management.base import BaseCommand

from models_registry import services


class Command(BaseCommand):
    help = "Load the starter model catalog (DeepSeek V3/R1 and quantizations with CEval, Qwen, Llama, GLM, TeleChat)."

    def handle(self, *args, **options):
        done = services.load_catalog()
        self.stdout.write(self.style.SUCCESS(
            f"Catalog: {done.models} model(s), {done.versions} version(s) and {done.scores} score(s) "
            f"added; {done.already} version(s) were already present."))
