from bulkops.registry import register_resource
from bulkops.resources import Resource

from .models import Book


@register_resource
class Books(Resource):
    name, model, label, id_alias = "books", Book, "Book", "book_ids"
