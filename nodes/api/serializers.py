"""Serializers of the inventory API (the contract in shared/API.md)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.core.api import SystemText
from nodes import services, validators
from nodes.choices import Transport
from nodes.keys import InvalidPrivateKey, PassphraseRequired, WrongPassphrase, load_private_key
from nodes.models import Accelerator, Credential, Node, NodeStatusChange


def _wrap(validator):
    def run(value):
        try:
            return validator(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    return run


class CredentialSerializer(serializers.ModelSerializer):
    """The private key is write-only: it is encrypted at rest and never returned."""

    private_key = serializers.CharField(write_only=True, trim_whitespace=False,
                                        style={"base_template": "textarea.html"})
    passphrase = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False)
    name = serializers.CharField(max_length=63, validators=[_wrap(validators.validate_name)])
    username = serializers.CharField(max_length=32, validators=[_wrap(validators.validate_username)])
    node_count = serializers.SerializerMethodField()

    class Meta:
        model = Credential
        fields = ["id", "name", "username", "private_key", "passphrase", "key_type", "fingerprint", "public_key",
                  "node_count", "created_at", "updated_at"]
        read_only_fields = ["key_type", "fingerprint", "public_key", "created_at", "updated_at"]

    def get_node_count(self, obj) -> int:
        return getattr(obj, "node_count", None) if hasattr(obj, "node_count") else obj.nodes.count()

    def validate_name(self, value):
        queryset = Credential.objects.filter(name=value)
        if self.instance is not None:
            queryset = queryset.exclude(pk=self.instance.pk)
        if queryset.exists():
            raise serializers.ValidationError("A credential with this name already exists.")
        return value

    def validate(self, attrs):
        if self.instance is not None and "private_key" not in attrs:
            return attrs
        if "private_key" not in attrs:
            raise serializers.ValidationError({"private_key": ["This field is required."]})
        try:
            load_private_key(attrs["private_key"], attrs.get("passphrase") or None)
        except (PassphraseRequired, WrongPassphrase) as exc:
            raise serializers.ValidationError({"passphrase": [str(exc)]}) from None
        except InvalidPrivateKey as exc:
            raise serializers.ValidationError({"private_key": [str(exc)]}) from None
        return attrs

    def create(self, validated_data):
        return services.create_credential(
            name=validated_data["name"], username=validated_data["username"],
            private_key=validated_data["private_key"], passphrase=validated_data.get("passphrase") or None,
        )

    def update(self, instance, validated_data):
        if "private_key" in validated_data:
            return services.create_credential(
                name=validated_data.get("name", instance.name),
                username=validated_data.get("username", instance.username),
                private_key=validated_data["private_key"],
                passphrase=validated_data.get("passphrase") or None, instance=instance,
            )
        for key in ("name", "username"):
            if key in validated_data:
                setattr(instance, key, validated_data[key])
        instance.save()
        return instance


class NodeFactsSerializer(serializers.Serializer):
    """Documents the stable keys of ``facts``; more keys may appear."""

    hostname = serializers.CharField(allow_null=True)
    os = serializers.CharField(allow_null=True)
    kernel = serializers.CharField(allow_null=True)
    arch = serializers.CharField(allow_null=True)
    cpu_model = serializers.CharField(allow_null=True)
    cpu_cores = serializers.IntegerField(allow_null=True)
    memory_total_bytes = serializers.IntegerField(allow_null=True)


class NodeSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[_wrap(validators.validate_name)])
    address = serializers.CharField(max_length=253, validators=[_wrap(validators.validate_address)])
    ssh_user = serializers.CharField(max_length=32, required=False, allow_blank=True,
                                     validators=[_wrap(validators.validate_username)])
    labels = serializers.JSONField(required=False, validators=[_wrap(validators.validate_labels)])
    credential = serializers.PrimaryKeyRelatedField(queryset=Credential.objects.all(), required=False,
                                                    allow_null=True)
    facts = serializers.SerializerMethodField()

    status_detail_display = SystemText(source="status_detail")

    class Meta:
        model = Node
        fields = ["id", "name", "address", "transport", "ssh_port", "ssh_user", "credential", "labels", "status",
                  "status_detail", "status_detail_display", "status_changed_at", "last_seen", "facts",
                  "accelerator_count",
                  "probe_interval_s", "telemetry_interval_s", "probe_errors", "last_probe_at", "last_probe_duration_ms",
                  "host_key_fingerprint", "created_at", "updated_at"]
        read_only_fields = ["status", "status_detail", "status_changed_at", "last_seen", "accelerator_count",
                            "probe_errors", "last_probe_at", "last_probe_duration_ms", "host_key_fingerprint",
                            "created_at", "updated_at"]

    @extend_schema_field(NodeFactsSerializer)
    def get_facts(self, obj):
        return obj.facts

    def validate_name(self, value):
        queryset = Node.objects.filter(name=value)
        if self.instance is not None:
            queryset = queryset.exclude(pk=self.instance.pk)
        if queryset.exists():
            raise serializers.ValidationError("A node with this name already exists.")
        return value

    def validate(self, attrs):
        transport = attrs.get("transport", getattr(self.instance, "transport", Transport.SSH))
        credential = attrs.get("credential", getattr(self.instance, "credential", None))
        if transport == Transport.SSH and credential is None:
            raise serializers.ValidationError({"credential": ["An SSH node needs a credential."]})
        if transport == Transport.LOCAL:
            others = Node.objects.filter(transport=Transport.LOCAL)
            if self.instance is not None:
                others = others.exclude(pk=self.instance.pk)
            if others.exists():
                raise serializers.ValidationError(
                    {"transport": ["Only one node can be the console's own machine (transport local)."]})
        return attrs


class NodeStatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeStatusChange
        fields = ["time", "from_status", "to_status", "reason", "actor"]


class MaintenanceSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class AcceleratorSerializer(serializers.ModelSerializer):
    node_name = serializers.CharField(source="node.name", read_only=True)

    class Meta:
        model = Accelerator
        fields = ["id", "node", "node_name", "index", "vendor", "kind", "model", "uuid", "bus_id",
                  "memory_total_bytes", "memory_used_bytes", "utilization_percent", "temperature_c", "power_w",
                  "health", "present", "missing_since", "extra", "updated_at"]
        read_only_fields = fields
