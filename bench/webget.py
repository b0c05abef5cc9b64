"""Tiny blocking HTTP GET for probes (one connection per request, like a new client)."""

import http.client
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes


def get(base_url: str, path: str, timeout: float = 5.0) -> Reply:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def try_get(base_url: str, path: str, timeout: float = 5.0) -> Reply | None:
    try:
        return get(base_url, path, timeout)
    except (OSError, http.client.HTTPException):
        return None
