from django.urls import path

from . import api, feeds, pages, sitemaps

urlpatterns = [
    # Public JSON
    path("api/articles/", api.ArticleListView.as_view(), name="api-articles"),
    path("api/articles/trending/", api.TrendingView.as_view(), name="api-trending"),
    path("api/articles/<int:article_id>/", api.ArticleDetailView.as_view(), name="api-article"),
    path("api/articles/<int:article_id>/views/", api.ArticleViewsView.as_view(), name="api-article-views"),
    path("api/articles/<int:article_id>/comments/", api.CommentCreateView.as_view(), name="api-article-comments"),
    path("api/articles/<int:article_id>/like/", api.LikeView.as_view(), name="api-article-like"),
    path("api/articles/<int:article_id>/corrections/", api.CorrectionCreateView.as_view(), name="api-article-corrections"),
    path("api/articles/<int:article_id>/revisions/", api.RevisionsView.as_view(), name="api-article-revisions"),
    path("api/articles/<int:article_id>/revert/", api.RevertView.as_view(), name="api-article-revert"),
    path("api/articles/<int:article_id>/preview-link/", api.PreviewLinkView.as_view(), name="api-article-preview-link"),
    path("api/articles/<int:article_id>/preview/", api.ArticlePreviewView.as_view(), name="api-article-preview"),
    path("api/articles/<int:article_id>/preview/page/", api.ArticlePreviewPageView.as_view(),
         name="api-article-preview-page"),
    path("api/preview/<str:token>/", api.PreviewView.as_view(), name="api-preview"),
    path("api/breaking-news/", api.BreakingNewsView.as_view(), name="api-breaking"),
    path("api/categories/", api.CategoryListView.as_view(), name="api-categories"),
    path("api/categories/<slug:slug>/articles/", api.CategoryArticlesView.as_view(), name="api-category-articles"),
    path("api/authors/<int:author_id>/", api.AuthorDetailView.as_view(), name="api-author"),
    path("api/authors/<int:author_id>/articles/", api.AuthorArticlesView.as_view(), name="api-author-articles"),
    path("api/search/", api.SearchView.as_view(), name="api-search"),
    # Personal JSON
    path("api/user/profile/", api.ProfileView.as_view(), name="api-profile"),
    path("api/user/feed/", api.UserFeedView.as_view(), name="api-user-feed"),
    path("api/user/follows/", api.FollowsView.as_view(), name="api-follows"),
    # HTML
    path("", pages.home_page, name="home"),
    path("articles/<slug:slug>/", pages.article_page, name="article"),
    path("preview/<str:token>/", pages.preview_page, name="preview"),
    path("category/<slug:slug>/", pages.category_page, name="category"),
    # Feeds, sitemaps, robots.txt (articles/feeds.py, articles/sitemaps.py)
    path("feed/", feeds.home_rss, name="feed-home"),
    path("feed/atom/", feeds.home_atom, name="feed-home-atom"),
    path("category/<slug:slug>/feed/", feeds.category_rss, name="feed-category"),
    path("category/<slug:slug>/feed/atom/", feeds.category_atom, name="feed-category-atom"),
    path("sitemap.xml", sitemaps.sitemap_index, name="sitemap-index"),
    path("sitemap-pages.xml", sitemaps.sitemap_pages, name="sitemap-pages"),
    path("sitemap-articles.xml", sitemaps.sitemap_articles, name="sitemap-articles"),
    path("sitemap-news.xml", sitemaps.sitemap_news, name="sitemap-news"),
    path("robots.txt", sitemaps.robots_txt, name="robots-txt"),
]
