from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    # By project and external id: the names people know (external ids may contain slashes).
    path("trail/<slug:project>/<path:external_id>/", views.item_trail, name="trail"),
    # The first address, by internal id: still answers, with a redirect to the one above.
    path("items/<int:item_id>/trail/", views.item_trail_by_id, name="item_trail"),
]
