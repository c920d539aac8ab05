"""``manage.py restore <backup>``: bring a console back from ``manage.py backup``'s file into an empty data
folder and database (console.management.backup; docs/deployment.md, "Backup and restore")."""

from django.core.management.base import BaseCommand, CommandError

from console.management.backup import SUMMARY_MODELS, BackupError, restore_backup


class Command(BaseCommand):
    help = ("Restore a backup made by `manage.py backup` into this console's (empty) data folder and database. "
            "Run it with the console stopped, and with the secret key the backup was made with.")

    def add_arguments(self, parser):
        parser.add_argument("backup", help="The .tar.gz file written by `manage.py backup`.")
        parser.add_argument("--force", action="store_true",
                            help="Replace a database and data folder that already hold data.")
        parser.add_argument("--allow-secret-mismatch", action="store_true",
                            help="Restore although this console's secret differs from the backup's: SSH "
                                 "credentials and notification secrets will not decrypt and must be entered again.")

    def handle(self, *args, backup, force, allow_secret_mismatch, **options):
        try:
            result = restore_backup(backup, force=force, allow_secret_mismatch=allow_secret_mismatch,
                                    log=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc))
        counts = result.counts
        summary = ", ".join(f"{counts[label]} {label.split('.')[1]}" for label in SUMMARY_MODELS if label in counts)
        made = result.manifest["created_at"]
        self.stdout.write(f"Restored the backup of {made} in {result.seconds:.1f} s: {summary}.")
        if result.mismatched:
            self.stdout.write(self.style.WARNING(
                "Row counts that differ from the manifest (migrations since the backup may explain them): "
                + ", ".join(f"{label} {a} -> {b}" for label, (a, b) in result.mismatched.items())))
        if result.undecryptable:
            self.stdout.write(self.style.WARNING(
                f"{len(result.undecryptable)} stored secrets do not decrypt with this console's secret "
                f"({', '.join(result.undecryptable[:10])}): enter them again."))
        else:
            self.stdout.write(f"{result.decrypted} stored secrets decrypt with this console's secret.")
        if result.prefix_note:
            self.stdout.write(result.prefix_note)
        self.stdout.write("Start the console (make run): the reconciler re-adopts engines that still run.")
