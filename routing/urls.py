from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("items/<int:item_id>/trail/", views.item_trail, name="item_trail"),
]
