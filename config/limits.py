"""Request body limits, one rule for every door: daphne while the body arrives
(config/server.py), BodySizeLimitMiddleware for the WSGI and test-client path."""

import re

from django.conf import settings

from bulkops import conf

# Where a file is uploaded to start an import: the API's and the import pages'.
IMPORT_PATHS = re.compile(r"^/api/v1/[a-z_]+/imports/$|^/[a-z_]+/import/$")
FORM_FIELDS_BYTES = 64 * 1024  # the options beside the file in a multipart body


def body_limit(path):
    """The most bytes a request body to `path` may have. File imports stream to disk under
    their own, larger limit (BULKOPS_MAX_IMPORT_BYTES, with room for the form's other fields)."""
    if IMPORT_PATHS.match(path):
        return conf.MAX_IMPORT_BYTES + FORM_FIELDS_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_message(limit, length=None):
    if length is None:  # chunked: only that it went past the limit is known
        return f"The request body is over the limit of {limit} bytes."
    return f"The request body is {length} bytes; the limit is {limit}."
