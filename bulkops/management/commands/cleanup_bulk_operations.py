"""`manage.py cleanup_bulk_operations`: delete finished operations past their retention."""

from django.core.management.base import BaseCommand, CommandError

from bulkops import retention


class Command(BaseCommand):
    help = "Delete finished bulk operations (and their items) created longer ago than --older-than."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            default=None,
            help="An age such as 30d or 12h (default: BULKOPS_RETENTION_DAYS days).",
        )

    def handle(self, *args, older_than, **options):
        try:
            age = retention.parse_age(older_than) if older_than else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        operations, items = retention.delete_old_operations(age)
        self.stdout.write(f"Deleted {operations} operations and {items} items.")
