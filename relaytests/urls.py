from django.urls import path

from relaytests import views

app_name = "relaytests"
urlpatterns = [
    path("", views.home, name="home"),
]
