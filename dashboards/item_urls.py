from django.urls import path

from dashboards import views

app_name = "items"

urlpatterns = [
    path("", views.item_search, name="search"),
]
