"""The operation registry: domain apps register their bulk operations here when they load."""

_operations = {}


def register(operation_class):
    """Class decorator: make a bulk operation available as (resource, name)."""
    operation = operation_class()
    key = (operation.resource, operation.name)
    if key in _operations:
        raise ValueError(f"bulk operation {key} is registered twice")
    _operations[key] = operation
    return operation_class


def get(resource, name):
    """The operation, or None when there is no such (resource, name)."""
    return _operations.get((resource, name))


def names(resource):
    """The operations a create request may name (internal ones are started by their endpoints)."""
    return sorted(name for (res, name), op in _operations.items() if res == resource and not op.internal)


def resources():
    return sorted({res for (res, _), op in _operations.items() if not op.internal})
