"""Amazon CloudFront (a thin stub): invalidations through boto3, which is optional.

Parameters:
    DISTRIBUTION_ID   the distribution
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   optional; otherwise boto3's usual credential chain

CloudFront has no tag purge: purge_tags invalidates "/*" (one wildcard path). URLs are invalidated
by path, up to 3000 a call. Raises ImproperlyConfigured when boto3 is not installed.
"""

import uuid
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from cdn.backends.base import BaseBackend, PurgeError


class CloudFrontBackend(BaseBackend):
    max_tags_per_call = 10_000
    max_urls_per_call = 3000

    def __init__(self, *, alias, params):
        super().__init__(alias=alias, params=params)
        try:
            import boto3  # noqa: F401  (optional SDK, imported only when this backend is used)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"CDN backend {alias!r} (CloudFrontBackend) needs boto3 installed."
            ) from exc
        self.distribution_id = params.get("DISTRIBUTION_ID")
        if not self.distribution_id:
            raise ImproperlyConfigured(f"CDN backend {alias!r} (CloudFrontBackend) needs DISTRIBUTION_ID.")

    def _client(self):
        import boto3

        kwargs = {}
        if self.params.get("AWS_ACCESS_KEY_ID"):
            kwargs["aws_access_key_id"] = self.params["AWS_ACCESS_KEY_ID"]
            kwargs["aws_secret_access_key"] = self.params.get("AWS_SECRET_ACCESS_KEY")
        return boto3.client("cloudfront", **kwargs)

    def _invalidate(self, paths):
        import botocore.exceptions

        try:
            self._client().create_invalidation(
                DistributionId=self.distribution_id,
                InvalidationBatch={
                    "Paths": {"Quantity": len(paths), "Items": paths},
                    "CallerReference": uuid.uuid4().hex,
                },
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise PurgeError(f"CloudFront invalidation failed: {exc}") from exc

    def purge_tag_batch(self, tags):
        self._invalidate(["/*"])

    def purge_url_batch(self, urls):
        self._invalidate([urlsplit(url).path or "/" for url in urls])
