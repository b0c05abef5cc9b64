"""The edge's allow-list is rendered from the views' @cache_public policies (caching/edge_vcl.py)
and the committed deploy/varnish/default.vcl matches it: a parameter added to a view and not
rendered into the VCL fails here (run `manage.py edge_vcl --write`)."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import resolve

from caching import edge_vcl
from caching.http import policy_of


def test_committed_vcl_matches_the_public_views():
    source = edge_vcl.default_vcl_path().read_text()
    assert edge_vcl.render_vcl(source) == source, "run `manage.py edge_vcl --write`"
    call_command("edge_vcl", "--check")


def test_every_public_route_and_its_params_are_in_the_vcl():
    source = edge_vcl.default_vcl_path().read_text()
    routes = edge_vcl.public_routes()
    by_name = {route.name: route for route in routes}
    for path in ("/api/articles/", "/api/search/", "/api/articles/7/", "/category/world/", "/"):
        match = resolve(path)
        route = by_name[match.url_name]
        assert route.params == tuple(sorted(p.name for p in policy_of(match.func).params))
        assert f'"{route.regex}"' in source
    assert by_name["api-search"].params == ("page", "q")
    assert "api-docs" not in by_name and "schema" not in by_name and "api-profile" not in by_name


def test_a_parameter_added_to_a_view_but_not_to_the_vcl_is_caught(tmp_path, settings):
    settings.ROOT_URLCONF = "tests.cdn.edge_urls"
    copy = tmp_path / "default.vcl"
    copy.write_text(edge_vcl.default_vcl_path().read_text())
    with pytest.raises(CommandError, match="edge_vcl --write"):
        call_command("edge_vcl", "--check", "--path", str(copy))
    call_command("edge_vcl", "--write", "--path", str(copy))
    assert '(?!(?:year)(?:=|&|$))' in copy.read_text()
    call_command("edge_vcl", "--check", "--path", str(copy))
