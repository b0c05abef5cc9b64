"""Django admin for editors. Every write goes through articles.services, so versions and cache
invalidation behave exactly as they do for the API."""

from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from caching import invalidate_tags_on_commit

from . import images, invalidation, pages, preview, services
from .models import Article, Author, Category, Comment, Visibility
from .permissions import can_purge_cache


class VisibilityFilter(admin.SimpleListFilter):
    """Draft / Scheduled / Live / Expired, by the visibility rule at the time of the request."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Visibility.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        published = queryset.filter(status=Article.Status.PUBLISHED)
        match self.value():
            case Visibility.DRAFT:
                return queryset.exclude(status=Article.Status.PUBLISHED)
            case Visibility.SCHEDULED:
                return published.filter(Q(published_at__gt=now) | Q(published_at__isnull=True))
            case Visibility.LIVE:
                return queryset.visible(now)
            case Visibility.EXPIRED:
                return published.filter(published_at__lte=now, expires_at__lte=now)
        return queryset


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ("name", "user")
    search_fields = ("name", "user__username")
    raw_id_fields = ("user",)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}


class ArticleAdminForm(forms.ModelForm):
    """The change form remembers the version it was opened at: saving it after another save of
    the article is refused (issue 28.4: no silent overwrite of someone else's edit)."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Article
        fields = ("title", "slug", "excerpt", "body", "author", "category", "status", "published_at", "expires_at",
                  "is_breaking", "hero_image_url", "hero_image")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["loaded_version"].initial = self.instance.version

    def clean_hero_image(self):
        """A new upload must be an acceptable picture (articles/images.py says why not)."""
        upload = self.cleaned_data.get("hero_image")
        if upload and "hero_image" in self.changed_data:
            images.check_upload(upload)
        return upload

    def clean(self):
        cleaned = super().clean()
        expires_at = cleaned.get("expires_at")
        if (expires_at is not None and cleaned.get("status") == Article.Status.PUBLISHED
                and cleaned.get("published_at") is None and expires_at <= timezone.now()):
            # Published without a time means "now" (services), which this take-down precedes.
            self.add_error("expires_at", "The take-down time must be after the go-live time (now, when published at is empty).")
        loaded = cleaned.get("loaded_version")
        if self.instance.pk and loaded is not None:
            now = Article.objects.filter(pk=self.instance.pk).values_list("version", flat=True).first()
            if now != loaded:
                raise forms.ValidationError(
                    f"This article was saved by someone else since you opened it (version {loaded}, now {now}). "
                    "Open it again to see their changes; yours were not saved."
                )
        return cleaned


class CorrectionForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), max_length=services.CORRECTION_MAX_LENGTH,
                           help_text="What was wrong and what is right now. Shown under the article, dated, for good.")


@admin.register(Article)
class ArticleAdmin(SimpleHistoryAdmin):
    """Editors' desk: scheduling (state column and filter), previews (a share link, or the form's
    unsaved changes), revisions (History: who, when, the field diff; "revert" per revision: an
    ordinary edit), corrections, "View on site"."""

    form = ArticleAdminForm
    change_form_template = "admin/articles/article/change_form.html"
    history_list_display = ["revert"]
    list_display = ("title", "state", "published_at", "expires_at", "category", "author", "is_breaking", "version",
                    "view_count")
    list_filter = (VisibilityFilter, "status", "is_breaking", "category", "published_at")
    search_fields = ("title", "slug", "excerpt")
    prepopulated_fields = {"slug": ("title",)}
    autocomplete_fields = ("author", "category")
    readonly_fields = ("version", "view_count", "created_at", "updated_at", "corrections_list")
    date_hierarchy = "published_at"
    list_select_related = ("author", "category")
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over 50k rows on every changelist
    actions = ("publish_now", "publish_selected", "unpublish_selected", "revoke_preview_links", "purge_from_caches")

    @admin.display(description="state")
    def state(self, obj: Article) -> str:
        """Live / Scheduled / Expired / Draft now (times show in the site's TIME_ZONE)."""
        return obj.visibility().label

    @admin.display(description="corrections")
    def corrections_list(self, obj: Article) -> str:
        if not obj.corrections:
            return "none"
        return format_html_join("", "<p>{}: {}</p>", (
            (timezone.localtime(datetime.fromisoformat(c["published_at"])).strftime("%Y-%m-%d %H:%M %Z"), c["note"])
            for c in obj.corrections))

    @admin.display(description="revert")
    def revert(self, record) -> str:
        url = reverse("admin:articles_article_revert", args=(record.id, record.history_id))
        return format_html('<a href="{}">Revert to this revision…</a>', url)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in services.ARTICLE_EDITABLE_FIELDS}
        if change:
            if not data:
                return  # nothing changed: no new version, no revision, nothing invalidated
            try:
                services.article_update(article=obj, data=data, expected_version=form.cleaned_data.get("loaded_version"),
                                        by=request.user)
            except services.StaleEdit as exc:  # saved by someone else between the form's check and this
                self.message_user(request, f"Not saved: {exc}", messages.ERROR)
        else:
            fields = {name: form.cleaned_data[name] for name in services.ARTICLE_EDITABLE_FIELDS if name in form.cleaned_data}
            created = services.article_create(**fields, by=request.user)
            obj.pk, obj.version = created.pk, created.version

    # --- the editor's desk: previews, corrections, reverts (issue 33) ----------------------------

    def get_urls(self):
        own = [
            path("preview/", self.admin_site.admin_view(self.preview_changes), name="articles_article_preview_add"),
            path("<int:object_id>/preview/", self.admin_site.admin_view(self.preview_changes),
                 name="articles_article_preview"),
            path("<int:object_id>/share-preview/", self.admin_site.admin_view(self.share_preview),
                 name="articles_article_share_preview"),
            path("<int:object_id>/correction/", self.admin_site.admin_view(self.add_correction),
                 name="articles_article_correction"),
            path("<int:object_id>/revert/<int:history_id>/", self.admin_site.admin_view(self.revert_view),
                 name="articles_article_revert"),
        ]
        return own + super().get_urls()

    def _article_for_change(self, request, object_id) -> Article:
        article = get_object_or_404(Article, pk=object_id)
        if not self.has_change_permission(request, article):
            raise PermissionDenied
        return article

    def preview_changes(self, request, object_id=None):
        """The change form's "Preview changes" (POSTed there, rendered here, saved nowhere): the
        article page as these fields would make it. Personal and never cached (articles/preview.py)."""
        if request.method != "POST":
            return redirect(reverse("admin:articles_article_change", args=(object_id,)) if object_id
                            else reverse("admin:articles_article_add"))
        if object_id is None:
            if not self.has_add_permission(request):
                raise PermissionDenied
            article = Article()
        else:
            article = self._article_for_change(request, object_id)
        form = self.get_form(request, article if object_id else None)(request.POST, request.FILES, instance=article)
        if not form.is_valid():
            errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
            return preview.personal(HttpResponse(f"Cannot preview: {errors}", status=400, content_type="text/plain"))
        unsaved = form.save(commit=False)
        if not unsaved.slug:
            unsaved.slug = "preview"
        return preview.personal(pages.render_article(request, preview.detail(unsaved), preview=True))

    def share_preview(self, request, object_id):
        """A fresh share link of the saved article (works for PREVIEW_LINK_SECONDS, until it is live)."""
        article = self._article_for_change(request, object_id)
        if article.visibility() is Visibility.LIVE:
            self.message_user(request, "This article is live: share its public page.", messages.INFO)
            return redirect(article.get_absolute_url())
        return redirect(preview.links(article)["url"])

    def add_correction(self, request, object_id):
        article = self._article_for_change(request, object_id)
        if request.method == "POST":
            form = CorrectionForm(request.POST)
            if form.is_valid():
                try:
                    services.correction_add(article=article, note=form.cleaned_data["note"], by=request.user)
                except services.ServiceError as exc:
                    form.add_error("note", str(exc))
                else:
                    self.message_user(request, "Correction published.", messages.SUCCESS)
                    return redirect(reverse("admin:articles_article_change", args=(article.pk,)))
        else:
            form = CorrectionForm()
        context = {**self.admin_site.each_context(request), "title": f"Publish a correction: {article}",
                   "form": form, "article": article, "opts": self.opts}
        return TemplateResponse(request, "admin/articles/article/correction.html", context)

    def revert_view(self, request, object_id, history_id):
        """GET: what reverting to the revision would change; POST: revert (an ordinary edit)."""
        article = self._article_for_change(request, object_id)
        revision = get_object_or_404(article.history, history_id=history_id)
        if request.method == "POST":
            shown = request.POST.get("version", "")
            try:
                services.article_revert(article=article, revision_id=history_id, by=request.user,
                                        expected_version=int(shown) if shown.isdigit() else -1)
            except services.ServiceError as exc:  # StaleEdit too: saved by someone since the page was shown
                self.message_user(request, f"Not reverted: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Reverted to revision {history_id} (now version {article.version}).",
                                  messages.SUCCESS)
            return redirect(reverse("admin:articles_article_history", args=(article.pk,)))
        current = article.history.order_by("-history_date", "-history_id").first()
        delta = current.diff_against(revision, included_fields=sorted(services.ARTICLE_EDITABLE_FIELDS))
        context = {**self.admin_site.each_context(request), "title": f"Revert “{article}” to revision {history_id}?",
                   "article": article, "revision": revision, "changes": delta.changes, "opts": self.opts}
        return TemplateResponse(request, "admin/articles/article/revert.html", context)

    def delete_model(self, request, obj):
        services.article_delete(article=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for article in queryset:  # per object, so every delete invalidates what it touched
            services.article_delete(article=article, by=request.user)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        """simple-history's page of one revision, to read only: its form's POST would save the old
        object outside services.article_revert (no version check; for a view-only user too)."""
        if request.method == "POST":
            raise PermissionDenied("Revert through “Revert to this revision…” on the History page.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _each(self, request, articles, service, done: str) -> None:
        """Run `service` on each article; one refused (ServiceError: its take-down time passed,
        a taken slug) is reported, the others go on."""
        count, refused = 0, []
        for article in articles:
            try:
                service(article=article, by=request.user)
            except services.ServiceError as exc:
                refused.append(f"{article}: {exc}")
                continue
            count += 1
        self.message_user(request, f"{done} {count} article(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Publish selected articles", permissions=["change"])
    def publish_selected(self, request, queryset):
        self._each(request, queryset.exclude(status=Article.Status.PUBLISHED), services.article_publish, "Published")

    @admin.action(description="Publish selected articles now (scheduled ones go live at once)", permissions=["change"])
    def publish_now(self, request, queryset):
        not_live = [article for article in queryset if article.visibility() is not Visibility.LIVE]
        self._each(request, not_live, services.article_publish_now, "Published now")

    @admin.action(description="Unpublish selected articles", permissions=["change"])
    def unpublish_selected(self, request, queryset):
        self._each(request, queryset.filter(status=Article.Status.PUBLISHED), services.article_unpublish, "Unpublished")

    @admin.action(description="Revoke the preview links of selected articles", permissions=["change"])
    def revoke_preview_links(self, request, queryset):
        for article in queryset:
            services.article_revoke_previews(article=article)
        self.message_user(request, f"Every preview link made so far of {queryset.count()} article(s) stopped working.",
                          messages.SUCCESS)

    def has_purge_cache_permission(self, request) -> bool:
        return can_purge_cache(request.user)

    @admin.action(description="Purge from caches (every tier and CDN)", permissions=["purge_cache"])
    def purge_from_caches(self, request, queryset):
        tags = set()
        for article in queryset:
            tags |= invalidation.article_tags_for_change(None, invalidation.snapshot(article))
        invalidate_tags_on_commit(tags)
        self.message_user(request, f"Purging {len(tags)} tag(s) from L1, L2 and the CDN.", messages.SUCCESS)


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("id", "article", "user", "created_at")
    raw_id_fields = ("article", "user")
    search_fields = ("body",)
    list_select_related = ("article", "user")
    show_full_result_count = False
