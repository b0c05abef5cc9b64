"""Every error is JSON on /api/ (and a plain page elsewhere), never a traceback.

Shape: {"error": "<code>", "detail": <message or {field: [messages]}>}.
"""

import logging

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

logger = logging.getLogger("newsite.errors")


def api_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers (JSON below, no traceback)
    if isinstance(exc, exceptions.ValidationError):
        code, detail = "invalid", exc.detail
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
    response.data = {"error": code, "detail": detail}
    return response


def json_error(status_code: int, code: str, detail) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status_code)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def handler400(request, exception=None):
    if _wants_json(request):
        return json_error(status.HTTP_400_BAD_REQUEST, "bad_request", "Bad request.")
    return HttpResponse("Bad request.", status=400, content_type="text/plain")


def handler403(request, exception=None):
    if _wants_json(request):
        return json_error(status.HTTP_403_FORBIDDEN, "permission_denied", "Forbidden.")
    return HttpResponse("Forbidden.", status=403, content_type="text/plain")


def handler404(request, exception=None):
    if _wants_json(request):
        return json_error(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
    return render(request, "articles/404.html", status=404)


def handler500(request):
    if _wants_json(request):
        return json_error(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "Internal server error.")
    return HttpResponse("Internal server error.", status=500, content_type="text/plain")
