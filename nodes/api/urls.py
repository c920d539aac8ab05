from rest_framework.routers import DefaultRouter

from nodes.api.views import AcceleratorViewSet, CredentialViewSet, NodeViewSet

router = DefaultRouter()
router.register("nodes", NodeViewSet)
router.register("credentials", CredentialViewSet)
router.register("accelerators", AcceleratorViewSet)
urlpatterns = router.urls
