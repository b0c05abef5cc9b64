"""Full-text search on PostgreSQL: a trigger keeps Article.search_vector current, a GIN index
serves it. Titles weigh more than excerpts, excerpts more than bodies. Nothing on SQLite (the
`make run` default), where search falls back to icontains."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION articles_article_search_vector() RETURNS trigger AS $$
BEGIN
  NEW.search_vector :=
      setweight(to_tsvector('pg_catalog.english', coalesce(NEW.title, '')), 'A')
   || setweight(to_tsvector('pg_catalog.english', coalesce(NEW.excerpt, '')), 'B')
   || setweight(to_tsvector('pg_catalog.english', coalesce(NEW.body, '')), 'C');
  RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER articles_article_search_vector_trg
  BEFORE INSERT OR UPDATE OF title, excerpt, body ON articles_article
  FOR EACH ROW EXECUTE FUNCTION articles_article_search_vector();

CREATE INDEX article_search_gin ON articles_article USING GIN (search_vector);
"""

BACKWARD = """
DROP INDEX IF EXISTS article_search_gin;
DROP TRIGGER IF EXISTS articles_article_search_vector_trg ON articles_article;
DROP FUNCTION IF EXISTS articles_article_search_vector();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("articles", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
