from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/start/", views.queue_start, name="queue_start"),
    path("projects/<slug:slug>/queue/", views.queue, name="project_queue"),
    path("work/<int:assignment_id>/", views.work, name="work"),
    path("work/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("work/<int:assignment_id>/decline/", views.decline, name="decline"),
    path("work/<int:assignment_id>/review/", views.review, name="review"),
    path("items/<int:item_id>/trail/", views.item_trail, name="item_trail"),
]
