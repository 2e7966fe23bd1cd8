from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication


class TokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"


class BearerAuthentication(authentication.TokenAuthentication):
    """The same tokens, under the `Authorization: Bearer <key>` keyword."""

    keyword = "Bearer"


class BearerScheme(OpenApiAuthenticationExtension):
    """The Bearer keyword in the OpenAPI schema, beside drf-spectacular's own `tokenAuth`."""

    target_class = BearerAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")
