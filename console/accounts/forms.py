"""Forms of the users and API-token pages."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from console.context_processors import ROLE_LABELS
from console.core.confirm import REASON_MAX
from console.core.permissions import ROLES

#: The choices of a role field: the three roles, and "no role" (the user can sign in to nothing).
NO_ROLE = ""


def role_choices():
    return [(role, ROLE_LABELS[role]) for role in ROLES] + [(NO_ROLE, _("no role"))]


class UserCreateForm(forms.Form):
    username = forms.CharField(label=_("User name"), max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=role_choices, initial="viewer")
    password = forms.CharField(label=_("Password"), required=False, strip=False,
                               widget=forms.PasswordInput(render_value=False),
                               help_text=_("Leave empty to have one generated; it is shown once, for you to hand "
                                           "over."))

    def clean_username(self):
        name = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=name).exists():
            raise ValidationError(_("A user with this name already exists."))
        return name

    def clean(self):
        data = super().clean()
        if data.get("password"):
            try:
                validate_password(data["password"], get_user_model()(username=data.get("username", "")))
            except ValidationError as exc:
                self.add_error("password", exc)
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=role_choices, required=False)
    reason = forms.CharField(label=_("Reason (optional)"), required=False, max_length=REASON_MAX)


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64,
                           help_text=_("What the token is for, e.g. ci-deploy or grafana."))

    def clean_name(self):
        value = self.cleaned_data["name"].strip()
        if not value or any(ord(c) < 32 for c in value):
            raise ValidationError(_("One line of text, without control characters."))
        return value
