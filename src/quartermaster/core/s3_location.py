"""Where content lives in an S3-compatible bucket, and a client for it: shared by DP stores
(dp/s3_store.py) and the site's content library (site/library_bucket.py).

    s3://BUCKET/PREFIX?endpoint=http(s)://HOST:PORT[&region=REGION]

The URL names a place, never a secret: credentials come from the environment (boto3's
chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, an instance role), so a URL
may be stored in config.json, shown in `qm dp list` and logged. A URL with any other query
parameter (a key pasted into it, say) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from quartermaster.core.errors import InvalidInput

SCHEME = "s3://"
PARAMETERS = ("endpoint", "region")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or a key prefix without leading or trailing "/"
    endpoint: str  # http(s)://host:port of the S3 API, which also serves anonymous GETs
    region: str = "us-east-1"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith(SCHEME):
            raise InvalidInput(
                f"store {url!r} is not an s3:// URL", "e.g. s3://bucket/prefix?endpoint=https://…"
            )
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        endpoint = (query.get("endpoint") or [""])[0].rstrip("/")
        if not parts.hostname or not endpoint.startswith(("http://", "https://")):
            raise InvalidInput(
                f"store {url!r} needs a bucket and ?endpoint=http(s)://HOST:PORT",
                "e.g. s3://qm-content/dp1?endpoint=http://127.0.0.1:8333",
            )
        unknown = sorted(set(query) - set(PARAMETERS))
        if unknown:
            raise InvalidInput(
                f"an s3:// URL takes only endpoint= and region=, not {', '.join(unknown)}",
                "credentials come from the environment (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY), never from the URL",
            )
        region = (query.get("region") or ["us-east-1"])[0]
        return cls(parts.netloc, parts.path.strip("/"), endpoint, region)

    def url(self) -> str:
        """The s3:// URL again (no secret in it)."""
        path = f"/{self.prefix}" if self.prefix else ""
        return f"{SCHEME}{self.bucket}{path}?endpoint={self.endpoint}&region={self.region}"

    def key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def public_url(self) -> str:
        """The base URL clients download from (path-style: ENDPOINT/BUCKET/PREFIX)."""
        return "/".join(p for p in (self.endpoint, self.bucket, self.prefix) if p)
