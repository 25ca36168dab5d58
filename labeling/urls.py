from django.urls import path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("import/", views.import_start, name="import"),
    path("projects/<slug:slug>/import/", views.import_start, name="project_import"),
    path("imports/<int:job_id>/", views.import_job_detail, name="import_job"),
    path("imports/<int:job_id>/progress/", views.import_job_progress, name="import_job_progress"),
]
