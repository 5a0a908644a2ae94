"""The S3 crop store against a real S3-compatible server (rclone serve s3), alone and behind the ingress."""

import botocore.exceptions
import pytest

from cloud.storage.crop_store import S3CropStore, crop_store_from_url
from seamline.errors import ConfigError
from seamline.inspection.v1 import inspection_pb2 as pb
from tests.fixtures.cloud import IngressThread
from tests.fixtures.s3 import start_s3_server, stop_s3_server
from tests.integration.cloud.test_ingress_bad_input import Stream, garment

pytestmark = pytest.mark.integration


def test_put_then_get_round_trips_and_lands_as_an_object(s3_server):
    store = crop_store_from_url(s3_server.crop_store_url("seamline-crops", "prod"))
    assert isinstance(store, S3CropStore)
    uri = store.put("site1/line1/2026-11-28/item-1/v0-c0", b"\xff\xd8jpeg", "jpeg")
    assert uri == "s3://seamline-crops/prod/site1/line1/2026-11-28/item-1/v0-c0.jpg"
    assert store.get(uri) == b"\xff\xd8jpeg"
    assert (
        s3_server.root / "seamline-crops/prod/site1/line1/2026-11-28/item-1/v0-c0.jpg"
    ).read_bytes() == b"\xff\xd8jpeg"
    with pytest.raises(ValueError, match="outside the crop store"):
        store.get("s3://another-bucket/prod/x.jpg")
    with pytest.raises(botocore.exceptions.ClientError):
        store.get("s3://seamline-crops/prod/missing.jpg")
    with pytest.raises(ValueError, match="bad crop key"):
        store.put("../escape", b"x", "jpeg")


@pytest.mark.parametrize(
    "url, message",
    [
        ("s3:///prefix", "name a bucket"),
        ("s3://b/p?endpoint=http://x&colour=red", "unknown option"),
        ("ftp://host/x", "use a directory"),
    ],
)
def test_bad_urls_are_configuration_errors(url, message):
    with pytest.raises(ConfigError, match=message):
        crop_store_from_url(url)


def test_ingress_stores_crops_in_s3_before_acking_and_refuses_retryably_when_s3_is_down(s3_server, tmp_path):
    store = crop_store_from_url(s3_server.crop_store_url("crops", "ingress"))
    ingress = IngressThread(tmp_path / "ingress", crop_store=store).start()
    stream = Stream(ingress.address)
    try:
        assert stream.send(pb.UplinkMessage(garment=garment(item_id="s3-1"))).WhichOneof("kind") == "ack"
        stored = list((s3_server.root / "crops" / "ingress").rglob("*.jpg"))
        assert [p.name for p in stored] == ["v0-c0.jpg"]
        uri = ingress.audit.garment("s3-1")["crops"][0]["uri"]
        assert uri.startswith("s3://crops/ingress/") and store.get(uri) == stored[0].read_bytes()

        stop_s3_server(s3_server)  # the object store goes away: nothing is acked that is not stored
        answer = stream.send(pb.UplinkMessage(garment=garment(item_id="s3-2")))
        assert answer.WhichOneof("kind") == "refusal" and answer.refusal.retryable
        assert answer.refusal.code == pb.REFUSAL_CODE_UNAVAILABLE and not ingress.audit.has("s3-2")

        restarted = start_s3_server(s3_server.root.parent, port=int(s3_server.endpoint.rsplit(":", 1)[1]))
        try:
            assert stream.send(pb.UplinkMessage(garment=garment(item_id="s3-2"))).WhichOneof("kind") == "ack"
            assert ingress.audit.has("s3-2")
        finally:
            stop_s3_server(restarted)
    finally:
        stream.close()
        ingress.stop()
