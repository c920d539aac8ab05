"""Forms of the inventory pages. Validation is shared with the API (nodes.validators)."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from nodes import validators
from nodes.choices import Transport
from nodes.keys import InvalidPrivateKey, PassphraseRequired, WrongPassphrase, load_private_key
from nodes.models import Credential, Node


class NodeForm(forms.ModelForm):
    labels_text = forms.CharField(
        label=_("Labels"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One key=value per line, for example accelerator=910b or rack=a3."),
    )

    class Meta:
        model = Node
        fields = ["name", "address", "transport", "ssh_port", "ssh_user", "credential", "probe_interval_s",
                  "telemetry_interval_s"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["labels_text"].initial = "\n".join(f"{k}={v}" for k, v in self.instance.labels.items())

    def clean_name(self):
        return validators.validate_name(self.cleaned_data["name"])

    def clean_address(self):
        return validators.validate_address(self.cleaned_data["address"])

    def clean_ssh_user(self):
        return validators.validate_username(self.cleaned_data["ssh_user"])

    def clean_labels_text(self):
        labels = {}
        for number, line in enumerate(self.cleaned_data["labels_text"].splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.strip().partition("=")
            if not sep:
                raise ValidationError(_("Line %(n)d: write key=value.") % {"n": number})
            labels[key.strip()] = value.strip()
        return validators.validate_labels(labels)

    def clean(self):
        data = super().clean()
        transport = data.get("transport")
        if transport == Transport.SSH and not data.get("credential"):
            self.add_error("credential", _("An SSH node needs a credential."))
        if transport == Transport.LOCAL:
            others = Node.objects.filter(transport=Transport.LOCAL).exclude(pk=self.instance.pk)
            if others.exists():
                self.add_error("transport", _("Only one node can be the console's own machine (transport local)."))
        return data

    def save(self, commit=True):
        self.instance.labels = self.cleaned_data.get("labels_text") or {}
        return super().save(commit)


class CredentialForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=63)
    username = forms.CharField(label=_("User name"), max_length=32)
    private_key = forms.CharField(label=_("Private key"), widget=forms.Textarea, strip=False,
                                  help_text=_("OpenSSH or PEM. Stored encrypted; it is never shown again."))
    passphrase = forms.CharField(label=_("Passphrase"), required=False, strip=False,
                                 widget=forms.PasswordInput(render_value=False))

    def clean_name(self):
        name = validators.validate_name(self.cleaned_data["name"])
        if Credential.objects.filter(name=name).exists():
            raise ValidationError(_("A credential with this name already exists."))
        return name

    def clean_username(self):
        return validators.validate_username(self.cleaned_data["username"])

    def clean(self):
        data = super().clean()
        if data.get("private_key"):
            try:
                load_private_key(data["private_key"], data.get("passphrase") or None)
            except (PassphraseRequired, WrongPassphrase) as exc:
                self.add_error("passphrase", str(exc))
            except InvalidPrivateKey as exc:
                self.add_error("private_key", str(exc))
        return data


class CredentialEditForm(forms.Form):
    """Rename a credential, change its user, or replace its key (left empty: the key is kept)."""

    name = forms.CharField(label=_("Name"), max_length=63)
    username = forms.CharField(label=_("User name"), max_length=32)
    private_key = forms.CharField(label=_("New private key"), widget=forms.Textarea, strip=False, required=False,
                                  help_text=_("Leave empty to keep the stored key. Stored encrypted; never shown."))
    passphrase = forms.CharField(label=_("Passphrase"), required=False, strip=False,
                                 widget=forms.PasswordInput(render_value=False))

    def api_payload(self) -> dict:
        """The body of ``PATCH credentials/{id}/`` (the serializer validates names and the key)."""
        data = self.cleaned_data
        payload = {"name": data["name"], "username": data["username"]}
        if data.get("private_key"):
            payload["private_key"] = data["private_key"]
            payload["passphrase"] = data.get("passphrase") or ""
        return payload


class GenerateKeyForm(forms.Form):
    """A credential whose Ed25519 key pair the console generates."""

    name = forms.CharField(label=_("Name"), max_length=63)
    username = forms.CharField(label=_("User name"), max_length=32, initial="root")

    def clean_name(self):
        name = validators.validate_name(self.cleaned_data["name"])
        if Credential.objects.filter(name=name).exists():
            raise ValidationError(_("A credential with this name already exists."))
        return name

    def clean_username(self):
        return validators.validate_username(self.cleaned_data["username"])
