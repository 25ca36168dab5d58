from django.urls import path

from work import views

app_name = "work"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/start/", views.queue_start, name="queue_start"),
    path("projects/<slug:slug>/queue/", views.queue, name="project_queue"),
    path("work/<int:assignment_id>/", views.work, name="work"),
    path("work/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("work/<int:assignment_id>/decline/", views.decline, name="decline"),
    path("work/<int:assignment_id>/review/", views.review, name="review"),
]
