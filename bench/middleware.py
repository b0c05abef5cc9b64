"""Outermost middleware of the servers under test: names the worker that answered.

The commit-to-fresh probes need to know which process (which L1) served each response, and the
per-request ratios need the number of requests the server answered. One header assignment and
one counter increment per response, identical in every mode including the floor.
"""

from bench.counters import count_request
from newsite.prometheus import process_id


def worker_header(get_response):
    def middleware(request):
        response = get_response(request)
        response["X-Bench-Worker"] = str(process_id())
        count_request()
        return response

    return middleware


def _front_twin(hit):
    """The same for a response of the WSGI front (newsite/front.py), which runs no middleware."""
    hit.headers.append(("X-Bench-Worker", str(process_id())))
    count_request()


worker_header.wsgi_front_twin = _front_twin
