from bulkops.api.collection import CollectionRouter

from .collection import TicketCollectionViewSet
from .views import CategoryViewSet

router = CollectionRouter()  # PATCH /api/v1/tickets/ changes many (collection.py)
router.register("tickets", TicketCollectionViewSet, basename="ticket")
router.register("categories", CategoryViewSet, basename="category")
urlpatterns = router.urls
