"""The one registry: each resource a domain app registers, and its operation types."""

_resources = {}


def register_resource(resource_class):
    """Class decorator: make a resource (bulkops.resources.Resource) bulk-editable by its name."""
    resource = resource_class()
    if resource.name in _resources:
        raise ValueError(f"resource {resource.name} is registered twice")
    _resources[resource.name] = resource
    resource.operations = {}
    if resource.revert_type is not None:
        register(type(f"{resource_class.__name__}Revert", (resource.revert_type,), {"resource": resource_class}))
    return resource_class


def register(operation_class):
    """Class decorator: make an operation type (bulkops.operations.OperationType) available on
    its resource, registered before it; a resource's own `revert` replaces the engine's."""
    resource = _resources.get(getattr(operation_class.resource, "name", None))
    if resource is None:
        raise ValueError(f"{operation_class.__name__}.resource is no registered resource: register it first")
    operation = operation_class()
    operation.resource = resource  # the registered instance, whose methods the type delegates to
    known = resource.operations.get(operation.name)
    if known is not None and not getattr(known, "engine_default", False):
        raise ValueError(f"operation type ({resource.name}, {operation.name}) is registered twice")
    resource.operations[operation.name] = operation
    return operation_class


def resource(name):
    """The resource, or None when there is no such name."""
    return _resources.get(name)


def get(resource_name, name):
    """The operation type, or None when there is no such (resource, name)."""
    found = _resources.get(resource_name)
    return found.operations.get(name) if found else None


def names(resource_name):
    """The operation types a create request may name (internal ones are started by their endpoints)."""
    return sorted(name for name, op in _resources[resource_name].operations.items() if not op.internal)


def names_with(operation_name):
    """The resources that have an operation type of this name (an `import`, say)."""
    return [name for name, found in _resources.items() if operation_name in found.operations]


def resources():
    """The resources a create request may name: those with an operation type that is not internal."""
    return sorted(name for name in _resources if names(name))


def batch_resources():
    """The resources the batch endpoints take: those that declare what a batch may do with them."""
    return sorted(name for name, found in _resources.items() if found.batch_methods)


def id_aliases():
    """{"ticket_ids": "tickets", …}: the selection key each resource adds beside `ids`, in the
    order the apps registered them (INSTALLED_APPS), as messages and the schema list them."""
    return {found.id_alias: name for name, found in _resources.items() if found.id_alias}
