"""Validation of user-supplied inventory values, shared by the API serializers and the forms."""

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                          r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)


def validate_name(value: str) -> str:
    if not NAME_RE.match(value or ""):
        raise ValidationError(_("Use 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a "
                                "letter or digit."))
    return value


def validate_address(value: str) -> str:
    """A DNS name or an IPv4/IPv6 address; nothing a shell or ssh could read as an option."""
    value = (value or "").strip()
    if not value:
        raise ValidationError(_("An address is required."))
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not all(HOSTNAME_LABEL_RE.match(label) for label in labels):
        raise ValidationError(_("Enter a host name (such as npu-01.example.com) or an IP address."))
    return value


def validate_username(value: str) -> str:
    if value and not USERNAME_RE.match(value):
        raise ValidationError(_("Enter a valid Unix user name."))
    return value


def validate_labels(value) -> dict:
    """Labels are a flat object of strings, with Kubernetes-style keys and values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(_("Labels must be an object of string keys and string values."))
    if len(value) > 64:
        raise ValidationError(_("At most 64 labels."))
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key) or len(key) > 253:
            raise ValidationError(_("Invalid label key %(key)r: use letters, digits, '-', '_', '.', "
                                    "an optional DNS prefix and '/'.") % {"key": key})
        if not isinstance(item, str) or not LABEL_VALUE_RE.match(item):
            raise ValidationError(_("Invalid value for label %(key)r: a string of at most 63 letters, digits, "
                                    "'-', '_' or '.'.") % {"key": key})
    return value
