"""What an edge accepts of a signed detector release manifest (real model-signing, real keys)."""

import json
from datetime import timedelta

import pytest

from seamline.clock import utcnow
from seamline.contract.mqtt import validate_payload
from seamline.release import ReleaseManifest, ReleaseRefused, check_manifest, sign_manifest
from tests.fixtures.pki import release_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return release_keys(tmp_path_factory.mktemp("keys"))


def _manifest(serial, **changes):
    now = utcnow()
    fields = dict(
        site_id="site1",
        version="d@1",
        serial=serial,
        artefact_url="https://h/a.tar",
        sha256="a" * 64,
        size_bytes=10,
        issued_at=now,
        expires_at=now + timedelta(hours=1),
    )
    return ReleaseManifest(**{**fields, **changes})


def test_serials_rise_except_for_a_signed_rollback(keys):
    private, public = keys
    payload = sign_manifest(_manifest(5), private)
    validate_payload("detector_releases", json.loads(payload))
    assert check_manifest(payload, public, site_id="site1", current_serial=4).serial == 5
    with pytest.raises(ReleaseRefused) as lower:
        check_manifest(sign_manifest(_manifest(3), private), public, site_id="site1", current_serial=4)
    assert lower.value.reason == "serial"
    rollback = sign_manifest(_manifest(3, rollback=True), private)
    assert check_manifest(rollback, public, site_id="site1", current_serial=4).rollback
    with pytest.raises(ReleaseRefused) as same:
        check_manifest(payload, public, site_id="site1", current_serial=5)
    assert same.value.reason == "current"  # the retained announcement of what runs: ignored quietly


def test_a_changed_manifest_another_site_or_garbage_is_refused(keys):
    private, public = keys
    message = json.loads(sign_manifest(_manifest(5), private))
    message["manifest"] = message["manifest"].replace('"serial":5', '"serial":50')
    with pytest.raises(ReleaseRefused, match="bad signature") as changed:
        check_manifest(json.dumps(message), public, site_id="site1", current_serial=0)
    assert changed.value.reason == "signature"
    with pytest.raises(ReleaseRefused) as other:
        check_manifest(sign_manifest(_manifest(5), private), public, site_id="site2", current_serial=0)
    assert other.value.reason == "site"
    for junk in (b"not json", b'{"manifest": 1, "signature": "AAAA"}', b'{"manifest": "x"}'):
        with pytest.raises(ReleaseRefused) as bad:
            check_manifest(junk, public, site_id="site1", current_serial=0)
        assert bad.value.reason in ("malformed", "signature")
