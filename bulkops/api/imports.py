"""POST /api/v1/<resource>/imports/: start an import from an uploaded file or a JSON body of rows
(SPEC §12). The rows are read and stored as a stream by bulkops.imports."""

import hashlib
import json

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import conf, imports, registry, services
from ..models import Mode
from ..representation import CreatedSerializer
from .mixins import StrictBooleanField, StrictIntegerField, idempotency_key
from .serializers import ErrorBodySerializer, OptionsSerializer
from .throttling import ScopedRateThrottle

JSONL_SUFFIXES = (".jsonl", ".ndjson")


class ImportOptionsSerializer(OptionsSerializer):
    """What an import request says besides its rows (a form's text fields, or the JSON body's keys)."""

    action = serializers.ChoiceField(choices=imports.ACTIONS, default=imports.UPSERT)
    match_on = serializers.CharField(required=False, help_text="tickets: id or external_id; metrics: id or name")
    format = serializers.ChoiceField(choices=imports.FORMATS, required=False, help_text="default: from the file name")
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.PARTIAL)
    dry_run = StrictBooleanField(default=False)
    batch_size = StrictIntegerField(min_value=1, max_value=conf.MAX_BATCH_SIZE, required=False)


class ImportUploadSerializer(ImportOptionsSerializer):
    """multipart/form-data: the file and the options as form fields (`metadata` as JSON text)."""

    file = serializers.FileField(help_text="CSV with a header row, or JSON Lines")


class ImportRowsSerializer(ImportOptionsSerializer):
    rows = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=imports.MAX_JSON_ROWS, help_text="one object per row"
    )


def form_values(data):
    """A form's text fields as the JSON body would give them: booleans, numbers and objects."""
    values = {name: data.get(name) for name in data if name != "file"}
    if values.get("dry_run") in ("true", "false"):
        values["dry_run"] = values["dry_run"] == "true"
    if str(values.get("batch_size", "")).isdigit():
        values["batch_size"] = int(values["batch_size"])
    if "metadata" in values:
        try:
            values["metadata"] = json.loads(values["metadata"])
        except ValueError:
            raise serializers.ValidationError({"metadata": ["Give a JSON object."]}) from None
    return values


def file_digest(upload):
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


class ImportView(APIView):
    """Start an import: 202 with the operation (the same status, items, items.csv, cancel,
    revert and retry as any bulk operation)."""

    resource_type = None  # set per mount
    throttle_scope = "bulk"

    def get_parsers(self):
        return [*super().get_parsers(), MultiPartParser()]

    def get_throttles(self):
        return [ScopedRateThrottle()]

    @extend_schema(
        # The JSON body (ImportRowsSerializer) is in the description only: openapi-python-client
        # generates a client that does not import for a body of two content types.
        request={"multipart/form-data": ImportUploadSerializer},
        description="Start an import from a CSV (with a header row) or JSON Lines file: 202 with the operation "
        "(status, items, items.csv, cancel, revert and retry as any bulk operation). Up to "
        f"{imports.MAX_JSON_ROWS} rows may instead be sent as application/json: "
        '`{"rows": [{…}, …], "action": …, "match_on": …}` with the same options.',
        responses={
            202: CreatedSerializer,
            200: OpenApiResponse(CreatedSerializer, description="a replayed Idempotency-Key"),
            400: ErrorBodySerializer,
            413: OpenApiResponse(ErrorBodySerializer, description="over BULKOPS_MAX_IMPORT_BYTES"),
            422: OpenApiResponse(ErrorBodySerializer, description="Idempotency-Key reused with another body"),
            429: OpenApiResponse(ErrorBodySerializer, description="throttled, or too many active operations"),
        },
        operation_id=None,
    )
    def post(self, request):
        definition = registry.get(self.resource_type, imports.IMPORT)
        key = idempotency_key(request)
        upload = request.FILES.get("file") if request.content_type.startswith("multipart/") else None
        if upload is not None:
            body = ImportUploadSerializer(data={**form_values(request.data), "file": upload})
        else:
            self.check_json_size(request)
            body = ImportRowsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        options = self.import_options(definition, body.validated_data, upload)
        source = upload.file if upload is not None else body.validated_data["rows"]
        fingerprint = ""
        if key:
            content = file_digest(upload) if upload is not None else body.validated_data["rows"]
            fingerprint = services.fingerprint(
                {"import": self.resource_type, "options": vars(options), "rows": content}
            )
        try:
            op, created = imports.start_import(
                request.user, definition, options, source, idempotency_key=key, body_fingerprint=fingerprint
            )
        except imports.FileRefused as exc:
            raise serializers.ValidationError({"file": [str(exc)]}) from None
        answer = CreatedSerializer(op, context={"request": request}).data
        response = Response(answer, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)
        response["Location"] = answer["links"]["self"]
        return response

    def check_json_size(self, request):
        """Only a file streams: a JSON body is read whole, so it keeps the usual body limit."""
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise TooLarge(f"A JSON body takes at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; upload a file.")

    def import_options(self, definition, data, upload):
        if upload is not None and upload.size > conf.MAX_IMPORT_BYTES:
            raise TooLarge(f"The file is {upload.size} bytes; the limit is {conf.MAX_IMPORT_BYTES}.")
        match_on = data.get("match_on", definition.match_fields[0])
        if match_on not in definition.match_fields:
            choices = " or ".join(definition.match_fields)
            raise serializers.ValidationError({"match_on": [f"Match {self.resource_type} on {choices}."]})
        if upload is None:
            file_format = "json"
        else:
            named = "jsonl" if upload.name.lower().endswith(JSONL_SUFFIXES) else "csv"
            file_format = data.get("format", named)
        return imports.Options(
            resource_type=self.resource_type,
            action=data["action"],
            match_on=match_on,
            format=file_format,
            mode=data["mode"],
            dry_run=data["dry_run"],
            batch_size=data.get("batch_size"),
            metadata=data.get("metadata", {}),
            callback_url=data.get("callback_url", ""),
            run_at=data.get("run_at"),
        )


class TooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "REQUEST_TOO_LARGE"

    def __init__(self, detail):
        super().__init__(detail)
        self.error_code = "REQUEST_TOO_LARGE"
