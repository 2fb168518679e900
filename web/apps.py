from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web pages"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from web.views.accounts import remember_sign_in

        user_logged_in.connect(remember_sign_in, dispatch_uid="web.remember_sign_in")
