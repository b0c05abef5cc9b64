"""Input validation (DRF serializers). Output is the selectors' plain data, so no output
serializers sit on the read path."""

from rest_framework import serializers

from .models import Article, Author, Category, no_control_characters

# The JSON type each field accepts (DRF coerces more: 0 into "0" for a CharField, "1" into a
# pk, "yes" into True); the OpenAPI schema (articles/schema.py) says these types, so a value of
# another type is a 400, as the schema promises.
JSON_TYPES = (
    (serializers.BooleanField, bool, "a boolean"),
    (serializers.ChoiceField, str, "a string"),
    (serializers.CharField, str, "a string"),
    (serializers.DateTimeField, str, "a string"),
    (serializers.RelatedField, int, "an integer id"),
)


def json_type_error(field, value) -> str | None:
    if value is None:
        return None  # allow_null is the field's own check
    for field_class, json_type, name in JSON_TYPES:
        if isinstance(field, field_class):
            ok = isinstance(value, json_type) and not (json_type is int and isinstance(value, bool))
            return None if ok else f"must be {name}"
    return None


class StrictSerializer(serializers.Serializer):
    """Unknown fields in a write body are a 400, not silently dropped; so is a value of another
    JSON type than the field's. `exactly_one_of`: field names of which a body gives exactly one
    (not null); the schema says it too (oneOf)."""

    exactly_one_of: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
            wrong = {name: [error] for name, value in data.items() if (error := json_type_error(self.fields[name], value))}
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)

    def validate(self, attrs):
        if self.exactly_one_of:
            given = [name for name in self.exactly_one_of if attrs.get(self.fields[name].source) is not None]
            if len(given) != 1:
                raise serializers.ValidationError(f"give exactly one of {' or '.join(self.exactly_one_of)}")
        return attrs


class ArticleWriteSerializer(StrictSerializer):
    title = serializers.CharField(max_length=200, validators=[no_control_characters])
    slug = serializers.SlugField(max_length=220, required=False, allow_blank=True)
    excerpt = serializers.CharField(required=False, allow_blank=True, validators=[no_control_characters])
    body = serializers.CharField(required=False, allow_blank=True, validators=[no_control_characters])
    category_id = serializers.PrimaryKeyRelatedField(
        source="category", queryset=Category.objects.all(), required=True
    )
    author_id = serializers.PrimaryKeyRelatedField(source="author", queryset=Author.objects.all(), required=False)
    status = serializers.ChoiceField(choices=Article.Status.choices, required=False)
    published_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="When it goes live. With status published, a future time schedules it (state: scheduled).",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="Optional take-down time, after published_at: then it is gone from every public surface.",
    )
    is_breaking = serializers.BooleanField(required=False)
    hero_image_url = serializers.URLField(required=False, allow_blank=True)


class CommentWriteSerializer(StrictSerializer):
    body = serializers.CharField(min_length=1, max_length=5000, trim_whitespace=True)


class CorrectionWriteSerializer(StrictSerializer):
    note = serializers.CharField(min_length=1, max_length=2000, trim_whitespace=True,
                                 validators=[no_control_characters])


class RevertSerializer(StrictSerializer):
    revision_id = serializers.IntegerField(min_value=1, max_value=2**31 - 1)


class FollowSerializer(StrictSerializer):
    exactly_one_of = ("author_id", "category_id")
    author_id = serializers.PrimaryKeyRelatedField(
        source="author", queryset=Author.objects.all(), required=False, allow_null=True
    )
    category_id = serializers.PrimaryKeyRelatedField(
        source="category", queryset=Category.objects.all(), required=False, allow_null=True
    )


class ProfileWriteSerializer(StrictSerializer):
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
