"""Input validation (DRF serializers). Output is the selectors' plain data, so no output
serializers sit on the read path."""

from rest_framework import serializers

from .models import Article, Author, Category


class StrictSerializer(serializers.Serializer):
    """Unknown fields in a write body are a 400, not silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class ArticleWriteSerializer(StrictSerializer):
    title = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=220, required=False, allow_blank=True)
    excerpt = serializers.CharField(required=False, allow_blank=True)
    body = serializers.CharField(required=False, allow_blank=True)
    category_id = serializers.PrimaryKeyRelatedField(
        source="category", queryset=Category.objects.all(), required=True
    )
    author_id = serializers.PrimaryKeyRelatedField(source="author", queryset=Author.objects.all(), required=False)
    status = serializers.ChoiceField(choices=Article.Status.choices, required=False)
    published_at = serializers.DateTimeField(required=False, allow_null=True)
    is_breaking = serializers.BooleanField(required=False)
    hero_image_url = serializers.URLField(required=False, allow_blank=True)


class CommentWriteSerializer(StrictSerializer):
    body = serializers.CharField(min_length=1, max_length=5000, trim_whitespace=True)


class FollowSerializer(serializers.Serializer):
    author_id = serializers.PrimaryKeyRelatedField(
        source="author", queryset=Author.objects.all(), required=False, allow_null=True
    )
    category_id = serializers.PrimaryKeyRelatedField(
        source="category", queryset=Category.objects.all(), required=False, allow_null=True
    )

    def validate(self, attrs):
        if (attrs.get("author") is None) == (attrs.get("category") is None):
            raise serializers.ValidationError("give exactly one of author_id or category_id")
        return attrs


class ProfileWriteSerializer(StrictSerializer):
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
