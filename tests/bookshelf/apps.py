from django.apps import AppConfig


class BookshelfConfig(AppConfig):
    name, label = "tests.bookshelf", "bookshelf"
    default_auto_field = "django.db.models.BigAutoField"
