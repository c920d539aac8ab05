from rest_framework.routers import DefaultRouter

from models_registry.api.views import ModelVersionViewSet, QuantizationViewSet, RegistryModelViewSet

router = DefaultRouter()
router.register("models", RegistryModelViewSet)
router.register("model-versions", ModelVersionViewSet)
router.register("quantizations", QuantizationViewSet)
