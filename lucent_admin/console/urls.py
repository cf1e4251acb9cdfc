from django.urls import path

from lucent_admin.console import views

app_name = "console"
urlpatterns = [
    path("", views.overview, name="overview"),
]
