"""``manage.py drf_create_token USER``: a new API token for USER, printed once (it is stored hashed).

Keeps the name and output of DRF's command (``Generated token <key> for user <name>``), which this one
replaces since DRF's authtoken app is no longer installed. The command manages one token per user, named
``drf_create_token`` (tokens made on the *API tokens* page are left alone): without ``-r`` an existing one is
left alone and the command fails (its key cannot be shown again); ``-r`` replaces it."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from console.core.models import ApiToken

#: The name of the token this command manages (a user's other tokens are theirs to manage on the page).
TOKEN_NAME = "drf_create_token"


class Command(BaseCommand):
    help = "Create an API token for a user and print it (only its digest is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("-r", "--reset", action="store_true", help="Replace the user's token.")

    def handle(self, *args, username, reset, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"Cannot create the Token: user {username} does not exist")
        existing = ApiToken.objects.filter(user=user, name=TOKEN_NAME)
        if existing.exists() and not reset:
            raise CommandError(f"User {username} already has a token; tokens are stored hashed and cannot be "
                               "shown again. Use -r to replace it (the old one stops working).")
        existing.delete()
        token = ApiToken.objects.create(user=user, name=TOKEN_NAME)
        self.stdout.write(f"Generated token {token.key} for user {username}")
