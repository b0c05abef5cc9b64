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
