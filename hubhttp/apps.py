from django.apps import AppConfig


class HubHttpConfig(AppConfig):
    name = "hubhttp"
    verbose_name = "Throttling"  # its one model: failed token authentications per address
    default_auto_field = "django.db.models.BigAutoField"
