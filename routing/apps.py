from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        # Connected here, once the app registry is ready: receivers import models and services.
        from labeling.signals import items_ingested
        from routing import receivers

        items_ingested.connect(receivers.route_ingested_items, dispatch_uid="routing.route_ingested_items")
