from rest_framework import authentication


class TokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"


class BearerAuthentication(authentication.TokenAuthentication):
    """The same tokens, under the `Authorization: Bearer <key>` keyword."""

    keyword = "Bearer"
