"""bulkops.conf: every engine setting has its default inside the app; a project's setting wins."""

import pytest
from django.test import override_settings

from bulkops import conf


def test_a_project_that_sets_nothing_gets_the_documented_defaults(settings):
    for name in conf.DEFAULTS:
        if hasattr(settings, f"BULKOPS_{name}"):
            delattr(settings, f"BULKOPS_{name}")
    assert (
        conf.MAX_ITEMS,
        conf.MAX_IMPORT_BYTES,
        conf.MAX_SLICES,
        conf.STALE_AFTER,
        conf.WEBHOOK_ALLOW_PRIVATE,
        conf.METRICS_TOKEN,
    ) == (1_000_000, 500 * 1024 * 1024, 4, 60, False, "")


def test_a_setting_of_the_project_wins_at_each_read():
    with override_settings(BULKOPS_MAX_ITEMS=3):
        assert conf.MAX_ITEMS == 3
    assert conf.MAX_ITEMS == 1_000_000


def test_an_unknown_name_is_an_error_not_a_silent_default():
    with pytest.raises(AttributeError, match="NO_SUCH"):
        conf.NO_SUCH  # noqa: B018
