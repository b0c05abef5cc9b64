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
