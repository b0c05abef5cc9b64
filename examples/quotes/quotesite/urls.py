from django.urls import path

from quotes import views

urlpatterns = [
    path("quotes/", views.quote_list, name="quote-list"),
    path("quotes/<int:quote_id>/", views.quote_detail, name="quote-detail"),
    path("colophon/", views.colophon, name="colophon"),
]
