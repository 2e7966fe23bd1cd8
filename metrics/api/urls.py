from bulkops.api.collection import CollectionRouter

from .collection import MetricCollectionViewSet

router = CollectionRouter()  # PUT /api/v1/metrics/ sets the verification of many (collection.py)
router.register("metrics", MetricCollectionViewSet, basename="metric")
urlpatterns = router.urls
