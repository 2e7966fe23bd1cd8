"""The one registry: a resource once, its operation types once each, the engine's revert unless
the app brings its own."""

import pytest

from bulkops import registry
from bulkops.operations import OperationType
from bulkops.resources import Resource, RevertFields
from tests.bookshelf.models import Book
from tests.bookshelf.resources import Books


@pytest.fixture
def scratch():
    """A resource registered for one test, then forgotten."""

    class Scratch(Resource):
        name, model, label = "scratch", Book, "Scratch"

    registry.register_resource(Scratch)
    yield Scratch
    registry._resources.pop("scratch")


def test_a_resource_gets_the_engines_revert_and_nothing_a_create_may_name(scratch):
    assert isinstance(registry.get("scratch", "revert"), RevertFields)
    assert "scratch" not in registry.resources()  # only an internal revert: no mount, no menu


def test_its_own_revert_replaces_the_engines(scratch):
    @registry.register
    class OwnRevert(OperationType):
        resource, name, internal = scratch, "revert", True

    assert type(registry.get("scratch", "revert")) is OwnRevert


def test_nothing_is_registered_twice(scratch):
    with pytest.raises(ValueError, match="resource scratch is registered twice"):
        registry.register_resource(scratch)

    class Move(OperationType):
        resource, name = scratch, "move"

    registry.register(Move)
    with pytest.raises(ValueError, match=r"operation type \(scratch, move\) is registered twice"):
        registry.register(Move)
    assert registry.resources() == ["books", "metrics", "scratch", "tickets"]


def test_an_operation_type_needs_its_resource_registered_first():
    class Unregistered(Resource):
        name = "unregistered"

    class Orphan(OperationType):
        resource, name = Unregistered, "orphan"

    with pytest.raises(ValueError, match="Orphan.resource is no registered resource: register it first"):
        registry.register(Orphan)


def test_the_registry_builds_the_id_aliases_from_the_resources():
    assert registry.id_aliases() == {"book_ids": "books", "metric_ids": "metrics", "ticket_ids": "tickets"}
    assert registry.resource("books") is registry.get("books", "move_to_shelf").resource
    assert isinstance(registry.resource("books"), Books)
