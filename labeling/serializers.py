"""API representations. Ingest rows are validated by `labeling.validation`, not here (a DRF serializer per
row would be far too slow for 10,000-row batches); the row serializers below only document the wire format
in the OpenAPI schema."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from experts.models import Role
from labeling.api_support import StrictCharField, StrictSlugField
from labeling.models import Annotation, DataType, FinalSource, Item, Prediction, Project


class LabelClassSerializer(serializers.Serializer):
    name = serializers.CharField()
    hotkey = serializers.CharField(allow_blank=True)


@extend_schema_field({
    "oneOf": [
        {"type": "string", "example": "cat"},
        {"type": "object", "properties": {"name": {"type": "string"}, "hotkey": {"type": "string"}},
            "required": ["name"]},
    ]
})
class ClassInputField(serializers.JSONField):
    """A class name, or {"name", "hotkey"}; checked by the service."""


class ProjectSerializer(serializers.ModelSerializer):
    classes = serializers.ListField(child=serializers.CharField(), source="class_names", read_only=True,
                                    help_text="Class names in order.")
    label_classes = LabelClassSerializer(many=True, source="classes", read_only=True,
                                         help_text="Classes with their keyboard shortcuts.")

    class Meta:
        model = Project
        fields = (
            "name", "slug", "classes", "label_classes", "instructions", "data_type", "decision_factors",
            "show_suggestion_to_crowd", "field_visibility", "rationale_required", "review_sample_rate", "created_at",
        )
        read_only_fields = fields


class ProjectMemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    added_at = serializers.DateTimeField(read_only=True)


class ProjectCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    slug = StrictSlugField(max_length=100)
    classes = serializers.ListField(child=ClassInputField(), min_length=2)
    instructions = StrictCharField(required=False, allow_blank=True, default="")
    data_type = serializers.ChoiceField(choices=DataType.choices, required=False, default=DataType.TEXT)
    decision_factors = serializers.ListField(child=StrictCharField(), required=False, default=list)
    show_suggestion_to_crowd = serializers.BooleanField(required=False, default=False)
    field_visibility = serializers.DictField(
        child=serializers.ListField(child=StrictCharField()), required=False, default=dict,
        help_text='Who sees each restricted item field on their labeling work: {"metadata.scanner_tag": '
        '["expert", "reviewer"]} (roles: crowd, expert, reviewer); fields not listed are seen by everyone.',
    )
    rationale_required = serializers.BooleanField(required=False, default=False)
    review_sample_rate = serializers.FloatField(required=False, default=0.0, min_value=0.0, max_value=1.0)


class PredictionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prediction
        fields = ("model_name", "model_version", "probabilities", "created_at")


class AnnotationSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")

    class Meta:
        model = Annotation
        fields = ("annotator", "label", "rationale", "factors", "role", "time_spent_ms", "submitted_at", "confidence")


class UnsetAsNullMixin:
    """The model stores "not yet" as "" (a blank CharField); the API says null, as its schema documents."""

    def to_representation(self, value):
        return super().to_representation(value) if value else None


class OptionalChoiceField(UnsetAsNullMixin, serializers.ChoiceField):
    pass


class OptionalCharField(UnsetAsNullMixin, serializers.CharField):
    pass


class ItemSerializer(serializers.ModelSerializer):
    final_label = OptionalCharField(read_only=True, allow_null=True, help_text="null until the item is labeled.")
    final_source = OptionalChoiceField(choices=FinalSource.choices, read_only=True, allow_null=True,
                                       help_text="Who decided the final label; null until the item is labeled.")
    domain = serializers.SerializerMethodField()
    gold = serializers.SerializerMethodField()
    predictions = PredictionSerializer(many=True, read_only=True)
    annotations = AnnotationSerializer(many=True, read_only=True)

    class Meta:
        model = Item
        fields = (
            "external_id", "data", "metadata", "domain", "language", "status", "final_label", "final_source",
            "final_confidence", "created_at", "updated_at", "labeled_at", "predictions", "annotations", "gold",
        )
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True})
    def get_domain(self, item: Item) -> str | None:
        return item.domain.path if item.domain_id else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_gold(self, item: Item) -> str | None:
        gold = getattr(item, "gold", None)
        return gold.label if gold is not None else None


# Documentation of the ingest wire format (see labeling.validation for the rules).

class PredictionRowSerializer(serializers.Serializer):
    model_name = StrictCharField(required=False, allow_blank=True)
    model_version = StrictCharField()
    probabilities = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=1),
        help_text="Class name -> probability; known classes, each in [0, 1], summing to 1 within 1e-6.",
    )


class AnnotationRowSerializer(serializers.Serializer):
    annotator = StrictCharField(help_text="Username; unknown names become inactive users.")
    label = StrictCharField()
    rationale = StrictCharField(required=False, allow_blank=True)
    factors = serializers.ListField(child=StrictCharField(), required=False)
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.CROWD)
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    submitted_at = serializers.DateTimeField(required=False)
    confidence = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=5)


class IngestRowSerializer(serializers.Serializer):
    external_id = StrictCharField(
        min_length=1, max_length=255, help_text="Your id; re-sending it updates the item instead of duplicating it."
    )
    data = serializers.DictField(help_text='The payload, e.g. {"text": "..."}.')
    metadata = serializers.DictField(required=False)
    domain = StrictCharField(required=False, help_text="Slash path, e.g. medical/radiology; created if new.")
    language = StrictCharField(required=False, help_text="BCP 47 tag.")
    predictions = PredictionRowSerializer(many=True, required=False)
    annotations = AnnotationRowSerializer(many=True, required=False)
    gold = StrictCharField(required=False, allow_null=True, help_text="Known-correct class (gold item).")


class IngestUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL, CSV or a JSON array (e.g. a Label Studio export).")


class IngestResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    predictions_added = serializers.IntegerField()
    annotations_added = serializers.IntegerField()
    items = serializers.IntegerField(help_text="Rows received (items created or touched).")


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, help_text="0-based row index; null for the request as a whole.")
    field = serializers.CharField(help_text="Path of the bad field, e.g. predictions[0].probabilities.cat.")
    message = serializers.CharField()


class IngestErrorSerializer(serializers.Serializer):
    errors = RowErrorSerializer(many=True)
    error_count = serializers.IntegerField()
    note = serializers.CharField(required=False, help_text="Present when the list was cut short.")
