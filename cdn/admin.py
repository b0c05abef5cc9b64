"""The purge backlog in the admin: filter by status, see which backends confirmed a row, retry rows."""

from django.contrib import admin, messages

from cdn import purges
from cdn.models import PurgeOutbox


@admin.register(PurgeOutbox)
class PurgeOutboxAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "short_delivered_to",
        "attempts",
        "short_tags",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "short_error",
    ]
    list_filter = ["status"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "tags",
        "urls",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "delivered_to",
    ]
    actions = ["retry_selected"]
    list_per_page = 100
    show_full_result_count = False  # the table can be large; the filters show the backlog

    def has_add_permission(self, request):
        return False

    @admin.display(description="tags")
    def short_tags(self, obj):
        text = " ".join(obj.tags + obj.urls)
        return text if len(text) <= 80 else text[:77] + "..."

    @admin.display(description="delivered to")
    def short_delivered_to(self, obj):
        return ", ".join(obj.delivered_to) or "-"

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:80]

    @admin.action(description="Retry selected purges now")
    def retry_selected(self, request, queryset):
        count = purges.retry_now(queryset)
        self.message_user(request, f"{count} purge(s) queued for delivery.", messages.SUCCESS)
