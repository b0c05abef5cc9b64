import pytest
from django.test import Client


@pytest.mark.django_db
def test_openapi_schema_and_docs_offline():
    client = Client()
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/articles/", "/api/articles/{article_id}/", "/api/search/", "/api/user/profile/"):
        assert path in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger" in html.lower() and "cdn.jsdelivr" not in html and "unpkg" not in html


@pytest.mark.django_db
def test_request_bodies_say_what_the_serializers_accept():
    """Issue 16.7: JSON only, the JSON types the serializers enforce, blank titles and NUL
    rejected, exactly one follow target, DELETE /api/user/follows/ documents its body."""
    import re

    schema = Client().get("/api/schema/?format=json").json()
    components, paths = schema["components"]["schemas"], schema["paths"]
    create = paths["/api/articles/"]["post"]
    assert list(create["requestBody"]["content"]) == ["application/json"]
    assert {"400", "401", "403", "415"} <= set(create["responses"])
    title = components["ArticleWrite"]["properties"]["title"]
    assert title["minLength"] == 1
    assert re.match(title["pattern"], "Comet") and not re.match(title["pattern"], "   ")
    assert not re.match(title["pattern"], "a\x00b")

    follow = components["Follow"]
    assert follow["additionalProperties"] is False
    assert [branch["required"] for branch in follow["oneOf"]] == [["author_id"], ["category_id"]]
    unfollow = paths["/api/user/follows/"]["delete"]
    assert unfollow["requestBody"]["required"] is True
    assert set(paths["/api/user/follows/"]["post"]["responses"]) >= {"200", "201"}


@pytest.mark.django_db
def test_blank_allowed_article_text_is_one_string_without_control_characters():
    """excerpt and body (blank allowed, no control characters): drf-spectacular wrote them as
    oneOf [the validator's regex as a match, empty], a schema only refused bodies satisfied.
    The preview operations of a change take PATCH's partial body and answer JSON and HTML."""
    import re

    schema = Client().get("/api/schema/?format=json").json()
    components, paths = schema["components"]["schemas"], schema["paths"]
    for component in ("ArticleWrite", "PatchedArticleWrite"):
        for name in ("excerpt", "body"):
            prop = components[component]["properties"][name]
            assert "oneOf" not in prop and prop["type"] == "string", (component, name, prop)
            assert re.match(prop["pattern"], "") and re.match(prop["pattern"], "Two\n\nparagraphs\tok")
            assert not re.match(prop["pattern"], "a\x05b") and not re.match(prop["pattern"], "a\x00b")
    for path, media_type in (("/api/articles/{article_id}/preview/", "application/json"),
                             ("/api/articles/{article_id}/preview/page/", "text/html")):
        operation = paths[path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PatchedArticleWrite")
        assert list(operation["responses"]["200"]["content"]) == [media_type]
        assert {"400", "401", "403", "404", "415"} <= set(operation["responses"])
