"""Prepare a console for use: role groups, the admin user, the local node. Idempotent."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from console.core.permissions import ROLES
from nodes.services import register_local_node


class Command(BaseCommand):
    help = "Create the viewer/operator/admin groups, the admin user and the local node (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--admin-user", default=os.environ.get("CONSOLE_ADMIN_USER", "admin"))
        parser.add_argument("--no-local-node", action="store_true")

    def handle(self, *args, admin_user, no_local_node, **options):
        from django.conf import settings

        password = os.environ.get("CONSOLE_ADMIN_PASSWORD")
        if password:
            # The same validators as a password set through the admin site (AUTH_PASSWORD_VALIDATORS).
            try:
                validate_password(password, user=get_user_model()(username=admin_user))
            except ValidationError as error:
                raise CommandError("CONSOLE_ADMIN_PASSWORD is refused by the password validators: "
                                   + " ".join(error.messages)) from None
        for role in ROLES:
            Group.objects.get_or_create(name=role)
        user_model = get_user_model()
        user = user_model.objects.filter(username=admin_user).first()
        if user is None:
            generated = not password
            password = password or secrets.token_urlsafe(12)
            user = user_model.objects.create_superuser(admin_user, email="", password=password)
            user.groups.add(Group.objects.get(name="admin"))
            if generated:
                self.stdout.write(self.style.WARNING(
                    f"Created user '{admin_user}' with the generated password: {password}\n"
                    "It is shown once; set CONSOLE_ADMIN_PASSWORD to choose it."))
            else:
                self.stdout.write(f"Created user '{admin_user}' with the password from CONSOLE_ADMIN_PASSWORD.")
        elif password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"Updated the password of '{admin_user}' from CONSOLE_ADMIN_PASSWORD.")
        if settings.CONSOLE_REGISTER_LOCAL_NODE and not no_local_node:
            node = register_local_node()
            self.stdout.write(f"Node '{node.name}' is registered (transport local).")
