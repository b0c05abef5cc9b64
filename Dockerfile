# One image for every newsite service of docker-compose.yml (web, worker, beat, Varnish, the
# migrate and warm one-shots): the same code, configs and Debian Varnish + varnish-modules (xkey)
# that `make up` uses on a host.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/app/.venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends varnish varnish-modules curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin newsite

WORKDIR /app
COPY requirements.txt ./
RUN python -m venv .venv && .venv/bin/pip install -r requirements.txt

COPY . .
# Static files are part of the image (whitenoise serves them; nginx may too, from a volume).
# .run/prometheus: PROMETHEUS_MULTIPROC_DIR, .run/media: MEDIA_ROOT; the compose `metrics` and
# `media` volumes mounted there start as copies of them, owned by newsite.
RUN DJANGO_SETTINGS_MODULE=newsite.settings python manage.py collectstatic --no-input -v 0 \
    && mkdir -p /app/.run/prometheus /app/.run/media && chown -R newsite:newsite /app/.run

USER newsite
EXPOSE 8000 8080
CMD ["deploy/scripts/run-web.sh"]
