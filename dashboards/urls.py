from django.urls import path

from dashboards import views

app_name = "dashboards"

urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/", views.project_dashboard, name="project"),
]
