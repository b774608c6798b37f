"""What the backend writes to its log, and what it keeps out of it.

One log format for the server, the workers and the offline commands; secrets never reach
a line: a URL's password and secret-looking query values are masked (:func:`mask_url`),
and free text from a library's error (which may quote a signed URL or a token) is
redacted (:func:`redact`) before it is logged or put in an error.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_QUERY = ("pass", "secret", "token", "key", "auth", "signature", "credential")


def mask_url(url: str) -> str:
    """``url`` fit for a log: the user:password part and secret-looking query values become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if any(word in k.lower() for word in _SECRET_QUERY) else v)
                           for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, secrets: "Iterable[str | None]") -> str:
    """``text`` with each of the known ``secrets`` (an API key, a webhook secret...) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def redact(text: str) -> str:
    """Drop query strings (signatures), userinfo and auth tokens from free text; at most 300 characters."""
    text = re.sub(r"(\w+://)[^/\s@]+@", r"\1", text)
    text = re.sub(r"(\w+://[^\s?#]*)\?[^\s'\"]*", r"\1", text)
    text = re.sub(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=-]+", r"\1 ***", text)
    return text[:300]


def configure_logging(level: str) -> None:
    """One log format for the server and the workers.

    urllib3 and httpcore log whole request lines at DEBUG, query strings included,
    and a presigned image URL carries its signature there: they stay at INFO or above
    whatever LOG_LEVEL says.
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("urllib3", "httpcore", "botocore", "boto3", "s3transfer"):
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
