"""The real newsite behind the real edge: an admin edit makes the next GET through Varnish fresh,
for the article and for the home and category feeds that list it."""

import datetime

import pytest
from django.db.models.fields.files import FieldFile

from tests.factories import make_article

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def admin_change_post_data(client, url, **changes):
    """The admin change form's current values as POST data, with `changes` applied."""
    form = client.get(url).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, FieldFile):
            continue  # a file input is posted empty unless a new file is chosen
        if isinstance(value, datetime.datetime):
            data[f"{name}_0"], data[f"{name}_1"] = value.date().isoformat(), value.time().strftime("%H:%M:%S")
        elif value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    data.update(changes)
    return data


def test_admin_edit_is_fresh_at_the_edge_for_article_and_feeds(edge, client):
    article = make_article(title="First title")
    paths = [
        f"/api/articles/{article.pk}/",
        "/api/articles/",
        f"/api/categories/{article.category.slug}/articles/",
    ]
    for path in paths:
        first = edge.get(path)
        assert first.status_code == 200, (path, first.text[:300])
        assert "First title" in first.text
        assert edge.get(path).headers["X-Cache-Edge"] == "HIT"

    client.force_login(_superuser())
    url = f"/admin/articles/article/{article.pk}/change/"
    response = client.post(url, admin_change_post_data(client, url, title="Second title"))
    assert response.status_code == 302, response.content[:2000]

    for path in paths:
        fresh = edge.get(path)
        assert "Second title" in fresh.text and "First title" not in fresh.text, path
        assert fresh.headers["X-Cache-Edge"] == "MISS"


def _superuser():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("cdn-admin", "cdn-admin@example.com", "pw-12345!")
