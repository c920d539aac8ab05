from rest_framework.routers import DefaultRouter

from console.alerting.api.views import (
    AlertRuleViewSet,
    AlertViewSet,
    NotificationChannelViewSet,
    NotificationViewSet,
    SilenceViewSet,
)

router = DefaultRouter()
router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")
router.register("alerts", AlertViewSet, basename="alert")
router.register("silences", SilenceViewSet, basename="silence")
router.register("notification-channels", NotificationChannelViewSet, basename="notification-channel")
router.register("notifications", NotificationViewSet, basename="notification")
urlpatterns = router.urls
