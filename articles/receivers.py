"""Signal receivers: one line each, the tag matrix lives in articles/invalidation.py.

pre_save reads the stored row (one query per article save) so that the tags of the state being
replaced (old category, old slug, was it breaking) are invalidated too, whatever object the
caller saved. Invalidation itself runs after commit.
"""

from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from . import invalidation
from .models import Article, Author, Category, Comment, Follow, Like


@receiver(pre_save, sender=Article, dispatch_uid="article_pre_save_snapshot")
def article_pre_save(sender, instance, raw=False, **kwargs):
    stored = Article.objects.filter(pk=instance.pk).values(*invalidation.SNAPSHOT_FIELDS).first() if instance.pk else None
    instance._stored_snapshot = stored


@receiver(post_save, sender=Article, dispatch_uid="article_post_save_invalidate")
def article_saved(sender, instance, raw=False, **kwargs):
    invalidation.article_changed(old=getattr(instance, "_stored_snapshot", None), new=invalidation.snapshot(instance))


@receiver(post_delete, sender=Article, dispatch_uid="article_post_delete_invalidate")
def article_deleted(sender, instance, **kwargs):
    invalidation.article_changed(old=invalidation.snapshot(instance), new=None)


@receiver([post_save, post_delete], sender=Comment, dispatch_uid="comment_invalidate")
@receiver([post_save, post_delete], sender=Like, dispatch_uid="like_invalidate")
def counts_changed(sender, instance, **kwargs):
    invalidation.article_counts_changed(article_id=instance.article_id)


@receiver([post_save, post_delete], sender=Author, dispatch_uid="author_invalidate")
def author_changed(sender, instance, **kwargs):
    invalidation.author_changed(author_id=instance.pk)


@receiver([post_save, post_delete], sender=Category, dispatch_uid="category_invalidate")
def category_changed(sender, instance, **kwargs):
    invalidation.category_changed(category_id=instance.pk)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="user_pre_save_name")
def user_pre_save(sender, instance, update_fields=None, **kwargs):
    # A save that names its fields without the username (a login's last_login) costs no query.
    if instance.pk and (update_fields is None or "username" in update_fields):
        instance._stored_username = sender.objects.filter(pk=instance.pk).values_list("username", flat=True).first()


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="user_renamed_invalidate")
def user_saved(sender, instance, created=False, **kwargs):
    stored = getattr(instance, "_stored_username", None)
    if not created and stored is not None and stored != instance.username:
        invalidation.commenter_renamed(user_id=instance.pk)


@receiver([post_save, post_delete], sender=Follow, dispatch_uid="follow_invalidate")
def follow_changed(sender, instance, **kwargs):
    invalidation.user_changed(user_id=instance.user_id)
