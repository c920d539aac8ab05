"""``manage.py backup <folder or file>``: a consistent snapshot of the console while it runs
(console.management.backup; docs/deployment.md, "Backup and restore")."""

from django.core.management.base import BaseCommand, CommandError

from console.management.backup import SUMMARY_MODELS, BackupError, create_backup, describe_reference


class Command(BaseCommand):
    help = ("Write a backup of the console (database snapshot, engine control files, benchmark datasets and a "
            "manifest) to a .tar.gz file. The secret key is not in it: the manifest names where it is held.")

    def add_arguments(self, parser):
        parser.add_argument("dest", help="A folder (a file named boom-console-backup-<time>.tar.gz is made in it) "
                                         "or the file to write.")

    def handle(self, *args, dest, **options):
        try:
            result = create_backup(dest)
        except BackupError as exc:
            raise CommandError(str(exc))
        manifest = result.manifest
        counts = manifest["database"]["row_counts"]
        summary = ", ".join(f"{counts[label]} {label.split('.')[1]}" for label in SUMMARY_MODELS if label in counts)
        self.stdout.write(f"Backup written to {result.path} ({result.path.stat().st_size} bytes, "
                          f"{result.seconds:.1f} s): {manifest['database']['vendor']} database with {summary}; "
                          f"{manifest['data']['files']} files of the data folder.")
        ref = manifest["secret_key"]
        self.stdout.write(f"The secret key is NOT in the backup: keep {describe_reference(ref)} "
                          f"(fingerprint {ref['fingerprint']}) safe; a restore needs the same secret.")
