"""``manage.py drf_create_token USER``: a new API token for USER, printed once (it is stored hashed).

Keeps the name and output of DRF's command (``Generated token <key> for user <name>``), which this one
replaces since DRF's authtoken app is no longer installed. A user has one token: without ``-r`` an existing
token is left alone and the command fails (its key cannot be shown again); ``-r`` replaces it."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.core.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (only its digest is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("-r", "--reset", action="store_true", help="Replace the user's token.")

    def handle(self, *args, username, reset, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"Cannot create the Token: user {username} does not exist")
        if ApiToken.objects.filter(user=user).exists() and not reset:
            raise CommandError(f"User {username} already has a token; tokens are stored hashed and cannot be "
                               "shown again. Use -r to replace it (the old one stops working).")
        token = ApiToken.objects.create(user=user)
        self.stdout.write(f"Generated token {token.key} for user {username}")
