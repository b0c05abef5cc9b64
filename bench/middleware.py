"""Outermost middleware of the servers under test: names the worker that answered.

The commit-to-fresh probes need to know which process (which L1) served each response. One
header assignment per response, identical in every mode including the floor.
"""

import os


def worker_header(get_response):
    def middleware(request):
        response = get_response(request)
        response["X-Bench-Worker"] = str(os.getpid())
        return response

    return middleware
