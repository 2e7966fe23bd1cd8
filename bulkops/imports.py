"""Imports (SPEC §12): an operation whose items are the rows of a file, each creating,
updating or upserting one record.

The file is read as a stream (CSV with a header, or JSON Lines) and its rows are written as
items with COPY while it is read, so a million rows cost the web process no more memory than
a hundred. Each item's `payload` is its row, its `target_id` the match key ("external_id:A-7",
blank for a row that names no record), its `position` the 0-based row. What a row does to its
record belongs to the domain app's `ImportType` (`find`, `create_row`, `update_row`), which calls
the same services and serializers as the single POST and PATCH.
"""

import csv
import io
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from rest_framework import serializers

from . import conf, errors
from .models import BulkOperationItem, ItemStatus, Mode
from .operations import OperationType, StrictSerializer
from .services import Request, create_operation, finish_launch, launch, slices_for

IMPORT = "import"
CREATE, UPDATE, UPSERT = "create", "update", "upsert"
ACTIONS = (CREATE, UPDATE, UPSERT)
FORMATS = ("csv", "jsonl")
MAX_JSON_ROWS = 1_000  # `{"rows": […]}` in a JSON body; larger ones are files
MAX_KEY_LENGTH = 255  # BulkOperationItem.target_id
COPY_BATCH = 5_000  # rows per write when the database has no COPY (the SQLite fallback)
# A record a row matches that its user may not see: never revealed, never created twice.
HIDDEN = object()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
RESULT_COLUMNS = ["row", "item_id", "status", "error_code", "error_message"]


class FileRefused(Exception):
    """The whole file is refused (400), and nothing of it is stored."""


class ImportData(StrictSerializer):
    """An import's `operation_data`: what it does with each row, and the file's columns."""

    action = serializers.ChoiceField(choices=ACTIONS)
    match_on = serializers.CharField()
    format = serializers.ChoiceField(choices=[*FORMATS, "json"])
    columns = serializers.ListField(child=serializers.CharField())


class ImportType(OperationType):
    """The `import` operation type of one resource; a domain app subclasses it per resource.

    A subclass names `columns` (what a file may hold), `match_fields` (what `match_on` may be,
    the first is the default), and implements `find`, `create_row` and `update_row`."""

    name, label = IMPORT, "Import"
    internal = True  # started by POST /api/v1/<resource>/imports/
    creates = True
    data_serializer = ImportData
    columns = ()
    match_fields = ("id",)
    integer_columns = ()  # CSV cells that are numbers in JSON ("12" ⇒ 12)

    def find(self, user, field, values):
        """{value: record} of the records whose `field` is one of `values`: locked, in pk order,
        the ones `user` may see; HIDDEN for those that exist but they may not."""
        raise NotImplementedError

    def create_row(self, ctx, row):
        """A new record from `row` (validated as the single POST does), in memory: a Change
        whose `created` is true, written by the resource's `save`."""
        raise NotImplementedError

    def update_row(self, record, ctx, row):
        """`row` applied to a locked record, as the single PATCH does: a Change."""
        raise NotImplementedError

    # --- what the engine calls -------------------------------------------------------------

    def parse_id(self, target_id):
        field, _, value = target_id.partition(":")
        return (field, value) if value else None

    def lock(self, user, keys):
        found = {}
        for field in sorted({field for field, _ in keys}):
            values = [value for other, value in keys if other == field]
            found.update({(field, value): record for value, record in self.find(user, field, values).items()})
        return found

    def apply(self, record, ctx, row):
        options = ctx.data
        action, match_on = options["action"], options["match_on"]
        if options["format"] == "csv":
            row = self.typed(row)
        key = row.get(match_on)
        fields = {name: value for name, value in row.items() if name != "id"}
        if record is HIDDEN or record is not None and action == CREATE:
            if action == UPDATE:
                raise errors.NotFound(f"No {self.resource.label.lower()} with {match_on} {key}")
            raise errors.Conflict(f"A {self.resource.label.lower()} with {match_on} {key} exists already")
        if record is not None:  # the key it matched on is no change
            return self.update_row(record, ctx, {name: v for name, v in fields.items() if name != match_on})
        if key not in (None, "") and (action == UPDATE or match_on == "id"):
            self.check_key(match_on, key)
            raise errors.NotFound(f"No {self.resource.label.lower()} with {match_on} {key}")
        if action == UPDATE:
            raise errors.ValidationFailed(f"{match_on}: required to update", details={match_on: ["Required."]})
        return self.create_row(ctx, fields)

    def check_key(self, field, value):
        """An `id` that is no id at all fails VALIDATION_ERROR, not NOT_FOUND."""
        if field == "id":
            try:
                self.resource.parse_id(value)
            except serializers.ValidationError as exc:
                raise errors.ValidationFailed(f"id: {exc.detail[0]}", details={"id": list(exc.detail)}) from None

    def typed(self, row):
        """A CSV row's cells as JSON would give them: integers where the column takes one."""
        typed = dict(row)
        for name in self.integer_columns:
            value = typed.get(name)
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                typed[name] = int(value)
        return typed

    def describe(self, change):
        before, result = self.resource.describe(change)
        created = getattr(change, "created", False)
        result["action"] = "created" if created else "updated" if change.changed else "unchanged"
        result["item_id"] = json_id(change.record.pk)
        return (None if created else before), result


def json_id(pk):
    return pk if pk is None or isinstance(pk, int) else str(pk)


def refused_row(serializer):
    """The single endpoint's validation errors as the item's error: VALIDATION_ERROR with
    `error_details` {column: [messages]}."""
    details = {name: [str(m) for m in (v if isinstance(v, list) else [v])] for name, v in serializer.errors.items()}
    return errors.ValidationFailed(errors.first_message(serializer.errors), details=details)


def valid(serializer):
    if not serializer.is_valid():
        raise refused_row(serializer)
    return serializer.validated_data


# --- reading a file ------------------------------------------------------------------------


@dataclass
class Row:
    """One row read from a file: its cells, or why it fails before any record is looked at."""

    cells: dict
    error: str = ""


def csv_rows(binary):
    """(columns, rows) of a CSV file read as a stream: strict UTF-8 (a BOM is skipped), any
    line ending, quoted commas and newlines. Blank cells are left out of a row: a blank cell
    changes nothing (JSON Lines set null)."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    with reading(reader):
        header = next(reader, None)
    if header is None:
        raise FileRefused("The file is empty: a CSV file starts with a header row.")
    columns = [name.strip() for name in header]
    if "" in columns or len(set(columns)) != len(columns):
        raise FileRefused("The header row needs a distinct name for each column.")

    def rows():
        with reading(reader):
            for cells in reader:
                if not cells:
                    continue  # a blank line
                if any("\x00" in cell for cell in cells):
                    raise FileRefused(f"Line {reader.line_num}: {NUL_MESSAGE}")
                row = {name: value for name, value in zip(columns, cells, strict=False) if value != ""}
                if len(cells) != len(columns):
                    yield Row(row, f"The row has {len(cells)} columns; the header has {len(columns)}.")
                else:
                    yield Row(row)

    return columns, rows()


NUL_MESSAGE = "Text cannot contain NUL (\\u0000) characters."


@contextmanager
def reading(reader):
    """A file that is not UTF-8 or not CSV is refused whole, naming the line."""
    try:
        yield reader
    except UnicodeDecodeError:
        raise FileRefused(f"The file is not valid UTF-8 (near line {reader.line_num + 1}).") from None
    except csv.Error as exc:
        raise FileRefused(f"Line {reader.line_num + 1}: {exc}") from None


def jsonl_rows(binary, known):
    """(columns, rows) of a JSON Lines file: one object per line; its columns are checked as
    each line is read (there is no header), against `known`."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict")

    def rows():
        number = 0
        try:
            for number, line in enumerate(text, 1):  # noqa: B007 - named in the messages below
                if not line.strip():
                    continue
                yield Row(json_object(line, number, known))
        except UnicodeDecodeError:
            raise FileRefused(f"The file is not valid UTF-8 (near line {number + 1}).") from None

    return list(known), rows()


def json_object(line, number, known):
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise FileRefused(f"Line {number} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FileRefused(f"Line {number} is not a JSON object.")
    check_columns(value, known, f"Line {number}")
    if "\\u0000" in line or "\x00" in line:
        raise FileRefused(f"Line {number}: {NUL_MESSAGE}")
    return value


def check_columns(names, known, where="The file"):
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise FileRefused(f"{where} has unknown column(s): {', '.join(unknown)}; known: {', '.join(known)}.")


# --- starting an import ----------------------------------------------------------------------


@dataclass
class Options:
    """What the request says besides the rows (the API serializer builds it)."""

    resource_type: str
    action: str = UPSERT
    match_on: str = "id"
    format: str = "csv"
    mode: str = Mode.PARTIAL
    dry_run: bool = False
    batch_size: int | None = None  # None: the engine sizes the chunks (bulkops.sizing)
    metadata: dict | None = None
    callback_url: str = ""
    run_at: datetime | None = None  # not before then (scheduled)


def start_import(user, definition, options, source, *, idempotency_key=None, body_fingerprint=""):
    """Store the import and its items as the rows are read, then launch it; (operation, created).

    `source` is an open binary file (CSV or JSON Lines, by `options.format`) or a list of row
    objects. A refusal of the whole file (FileRefused, 400) rolls everything back."""
    with transaction.atomic():
        columns, rows = read(definition, options, source)
        data = {"action": options.action, "match_on": options.match_on, "format": options.format, "columns": columns}
        request = import_request(definition.resource.name, data, options, dry_run=options.dry_run)
        op, created = create_operation(
            user, request, total_items=0, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint
        )
        if not created:
            return op, False
        total = write_items(op, options.match_on, rows)
        if not total:
            raise FileRefused("The file has no rows.")
        if options.mode == Mode.ATOMIC and total > conf.MAX_ATOMIC_ITEMS:
            raise FileRefused(f"An atomic import takes at most {conf.MAX_ATOMIC_ITEMS} rows; this one has {total}.")
        launch_counted(op, total, failed=fail_duplicates(op, options.match_on))
    return finish_launch(op), True


def start_from_preview(user, preview, *, idempotency_key=None, body_fingerprint=""):
    """The import a finished dry run (its preview) showed, over the same rows: copied inside the
    database, so the file is not uploaded twice. (operation, created)."""
    if not (preview.operation_type == IMPORT and preview.dry_run and preview.is_finished):
        raise errors.Conflict("Only a finished import preview can be started")
    with transaction.atomic():
        request = import_request(preview.resource_type, preview.operation_data, preview, dry_run=False)
        op, created = create_operation(
            user, request, total_items=0, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint
        )
        if not created:
            return op, False
        copy_items(preview, op)
        failed = BulkOperationItem.objects.filter(operation_id=op.pk, status=ItemStatus.FAILED).count()
        launch_counted(op, preview.total_items, failed=failed)
    return finish_launch(op), True


def import_request(resource_type, operation_data, options, *, dry_run):
    """An import's Request; `options` — the upload's Options, or the preview an import starts
    from — gives its metadata, mode, chunk size, callback and start time (`run_at`)."""
    return Request(
        resource_type=resource_type,
        operation_type=IMPORT,
        ids=[],
        operation_data=operation_data,
        metadata=options.metadata or {},
        mode=options.mode,
        batch_size=options.batch_size,
        dry_run=dry_run,
        callback_url=options.callback_url,
        run_at=options.run_at,
    )


def launch_counted(op, total, *, failed):
    """Its rows written, the import gets its counts — `failed`: rows failed already (a duplicate
    key, a wrong number of cells) — and its slices, and is launched (bulkops.services.launch)."""
    op.total_items = total
    op.slices = slices_for(op.execution, op.mode, total)
    op.processed_items = op.failed_items = failed
    op.save(update_fields=["total_items", "slices", "processed_items", "failed_items"])
    launch(op)


def copy_items(preview, op):
    """The preview's rows as the new import's items: pending, but for those that failed before
    any record was looked at (a malformed row, a duplicate key), which fail the same again."""
    table = BulkOperationItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({COPY_COLUMNS}) "
            "SELECT %s, position, target_id, payload, "
            "CASE WHEN attempts = 0 THEN status ELSE %s END, "
            "CASE WHEN attempts = 0 THEN error_code ELSE '' END, "
            "CASE WHEN attempts = 0 THEN error_message ELSE '' END, 0, "
            "CASE WHEN attempts = 0 THEN processed_at END "
            f"FROM {table} WHERE operation_id = %s ORDER BY position",
            [op.pk, ItemStatus.PENDING, preview.pk],
        )


def read(definition, options, source):
    if isinstance(source, list):
        for number, row in enumerate(source):
            if not isinstance(row, dict):
                raise FileRefused(f"rows[{number}] is not an object.")
        columns = sorted({name for row in source for name in row})
        check_columns(columns, definition.columns)
        rows = (Row(row) for row in source)
    elif options.format == "csv":
        columns, rows = csv_rows(source)
        check_columns(columns, definition.columns)
    else:
        columns, rows = jsonl_rows(source, definition.columns)
    if options.action == UPDATE and options.format == "csv" and options.match_on not in columns:
        raise FileRefused(f"An update matches on {options.match_on}: the file has no {options.match_on} column.")
    return columns, rows


def item_row(position, match_on, row):
    """The item's columns for one row: (position, target_id, payload, status, code, message)."""
    value = row.cells.get(match_on)
    key = "" if value in (None, "") else str(value)
    status, code, message = ItemStatus.PENDING, "", ""
    if row.error:
        status, code, message = ItemStatus.FAILED, errors.VALIDATION_ERROR, row.error
    elif len(key) > MAX_KEY_LENGTH - len(match_on) - 1:
        status, code, message = ItemStatus.FAILED, errors.VALIDATION_ERROR, f"{match_on}: too long to match on"
        key = ""
    target = f"{match_on}:{key}" if key else ""
    return position, target, json.dumps(row.cells), status, code, message


COPY_COLUMNS = "operation_id, position, target_id, payload, status, error_code, error_message, attempts, processed_at"


def write_items(op, match_on, rows):
    """Write every row as an item while reading them (COPY); returns how many."""
    total, limit, now = 0, conf.MAX_ITEMS, timezone.now()
    if connection.vendor != "postgresql":
        return write_items_in_batches(op, match_on, rows, limit, now)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {BulkOperationItem._meta.db_table} ({COPY_COLUMNS}) FROM STDIN") as copy,
    ):
        for position, row in enumerate(rows):
            if position >= limit:
                raise FileRefused(f"An import takes at most {limit} rows.")
            position, target, payload, status, code, message = item_row(position, match_on, row)
            done = now if status == ItemStatus.FAILED else None
            copy.write_row((op.pk, position, target, payload, status, code, message, 0, done))
            total += 1
    return total


def write_items_in_batches(op, match_on, rows, limit, now):
    batch, total = [], 0
    for position, row in enumerate(rows):
        if position >= limit:
            raise FileRefused(f"An import takes at most {limit} rows.")
        position, target, payload, status, code, message = item_row(position, match_on, row)
        batch.append(
            BulkOperationItem(
                operation=op,
                position=position,
                target_id=target,
                payload=json.loads(payload),
                status=status,
                error_code=code,
                error_message=message,
                processed_at=now if status == ItemStatus.FAILED else None,
            )
        )
        total += 1
        if len(batch) == COPY_BATCH:
            BulkOperationItem.objects.bulk_create(batch)
            batch = []
    BulkOperationItem.objects.bulk_create(batch)
    return total


def fail_duplicates(op, match_on):
    """Each row whose key an earlier row has fails DUPLICATE_ROW, in one statement inside the
    database (a million keys in a Python set would cost the web process ~100 MB); returns how
    many rows have failed so far (these and the malformed ones)."""
    table = BulkOperationItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS i SET status = %s, error_code = %s, error_message = %s || d.first, processed_at = %s "
            f"FROM (SELECT id, position, min(position) OVER (PARTITION BY target_id) AS first FROM {table} "
            "WHERE operation_id = %s AND target_id <> '' AND status = %s) AS d "
            "WHERE i.id = d.id AND d.position > d.first",
            [
                ItemStatus.FAILED,
                errors.DUPLICATE_ROW,
                f"The same {match_on} as row ",
                timezone.now(),
                op.pk,
                ItemStatus.PENDING,
            ],
        )
    return BulkOperationItem.objects.filter(operation_id=op.pk, status=ItemStatus.FAILED).count()


# --- the results file ----------------------------------------------------------------------


def neutralised(value):
    """A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) starts with `'`."""
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def result_header(op):
    return [*op.operation_data.get("columns", []), *RESULT_COLUMNS]


def result_cells(op, item):
    """One item as a row of the results file: the uploaded row's own columns, then the outcome."""
    row = item.payload or {}
    cells = [row.get(name) for name in op.operation_data.get("columns", [])]
    outcome = [item.position, (item.result or {}).get("item_id"), item.status, item.error_code, item.error_message]
    return [neutralised(cell) for cell in [*cells, *outcome]]


def is_import(op):
    return op.operation_type == IMPORT and isinstance(op.operation_data, dict) and "columns" in op.operation_data
