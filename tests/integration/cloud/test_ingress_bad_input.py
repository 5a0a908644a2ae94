"""Bad input at the ingress: each case a precise refusal (or status), and the stream and server go on."""

import queue
import struct
import threading
import zlib

import grpc
import numpy as np
import pytest
from google.protobuf import timestamp_pb2

from cloud.ingress.validation import IngressLimits
from seamline.imaging import encode_jpeg, encode_png
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc
from tests.fixtures.cloud import IngressThread

pytestmark = pytest.mark.integration
HELLO = pb.AgentHello(agent_id="edge-bad", site_id="site1", line_id="line1", contract_version="v1")
JPEG = encode_jpeg(np.full((40, 60, 3), 90, np.uint8))


def _png_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` pixels, small on the wire."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def garment(item_id="ok-1", **changes) -> pb.Garment:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    g = pb.Garment(
        item_id=item_id,
        site_id="site1",
        line_id="line1",
        station_id="st1",
        capture_time=now,
        deadline=now,
        views=[pb.View(view_index=0, width=1280, height=720, camera_id="top")],
        crops=[
            pb.Crop(
                crop_id="v0-c0",
                view_index=0,
                box=pb.Box(x1=10, y1=10, x2=70, y2=50),
                crop_box=pb.Box(x1=0, y1=0, x2=80, y2=60),
                detector_score=0.7,
                detector_label="defect",
                image=JPEG,
                encoding=pb.IMAGE_ENCODING_JPEG,
            )
        ],
        detector_model_version="tiny@test",
    )
    for path, value in changes.items():
        target = g
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if p.isdigit() else getattr(target, p)
        if callable(value):
            value(target)
        else:
            setattr(target, last, value)
    return g


def _crops(n):
    def apply(g):
        del g.crops[:]
        for i in range(n):
            g.crops.add(
                crop_id=f"c{i}",
                view_index=0,
                box=pb.Box(x1=1, y1=1, x2=5, y2=5),
                detector_score=0.5,
                image=b"x",
                encoding=pb.IMAGE_ENCODING_JPEG,
            )

    return apply


CASES = [
    # (garment, refusal code, fragment of the reason)
    (garment(item_id=""), pb.REFUSAL_CODE_INVALID, "item_id"),
    (garment(item_id="bad id with spaces"), pb.REFUSAL_CODE_INVALID, "item_id"),
    (garment(item_id="x" * 200), pb.REFUSAL_CODE_INVALID, "item_id"),
    # legal characters that name nothing: a '.' or '..' path segment in the crop store
    (garment(item_id="."), pb.REFUSAL_CODE_INVALID, "item_id '.' is only dots"),
    (garment(item_id=".."), pb.REFUSAL_CODE_INVALID, "item_id '..' is only dots"),
    (garment(item_id="..."), pb.REFUSAL_CODE_INVALID, "item_id '...' is only dots"),
    (garment(site_id="site2"), pb.REFUSAL_CODE_INVALID, "differ from the stream's hello"),
    (garment(line_id="other"), pb.REFUSAL_CODE_INVALID, "differ from the stream's hello"),
    (garment(station_id="s" * 65), pb.REFUSAL_CODE_INVALID, "station_id"),
    (garment(detector_model_version=""), pb.REFUSAL_CODE_INVALID, "detector_model_version"),
    (
        garment(capture_time=lambda g: g.ClearField("capture_time")),
        pb.REFUSAL_CODE_INVALID,
        "capture_time is missing",
    ),
    (garment(views=lambda g: g.ClearField("views")), pb.REFUSAL_CODE_INVALID, "0 views"),
    (
        garment(views=lambda g: [g.views.add(view_index=i + 1, width=10, height=10) for i in range(4)]),
        pb.REFUSAL_CODE_INVALID,
        "5 views",
    ),
    (
        garment(views=lambda g: g.views.add(view_index=0, width=10, height=10)),
        pb.REFUSAL_CODE_INVALID,
        "repeated",
    ),
    (garment(views__0__width=0), pb.REFUSAL_CODE_INVALID, "size 0x720"),
    (garment(views__0__height=100_000), pb.REFUSAL_CODE_INVALID, "1280x100000"),
    (garment(crops=lambda g: g.ClearField("crops")), pb.REFUSAL_CODE_INVALID, "at least one crop"),
    (garment(crops=_crops(10_000)), pb.REFUSAL_CODE_TOO_LARGE, "10000 crops"),
    (garment(crops__0__crop_id=""), pb.REFUSAL_CODE_INVALID, "must be 1-64 characters"),
    (
        garment(crops__0__crop_id="../../etc/passwd"),
        pb.REFUSAL_CODE_INVALID,
        "must be 1-64 characters of A-Z",
    ),
    (garment(crops__0__crop_id="c 1#x"), pb.REFUSAL_CODE_INVALID, "must be 1-64 characters of A-Z"),
    (garment(crops__0__crop_id="."), pb.REFUSAL_CODE_INVALID, "crops[0].crop_id '.' is only dots"),
    (garment(crops__0__crop_id=".."), pb.REFUSAL_CODE_INVALID, "crops[0].crop_id '..' is only dots"),
    (garment(crops=lambda g: g.crops.append(g.crops[0])), pb.REFUSAL_CODE_INVALID, "is repeated"),
    (garment(crops__0__view_index=3), pb.REFUSAL_CODE_INVALID, "names no view"),
    (garment(crops__0__box__x2=5.0), pb.REFUSAL_CODE_INVALID, "x2 > x1"),
    (garment(crops__0__box__x2=1300.0), pb.REFUSAL_CODE_INVALID, "outside its view"),
    (garment(crops__0__box__y1=-50.0), pb.REFUSAL_CODE_INVALID, "outside its view"),
    (garment(crops__0__box__x1=float("nan")), pb.REFUSAL_CODE_INVALID, "finite"),
    (garment(crops__0__box__y2=float("inf")), pb.REFUSAL_CODE_INVALID, "finite"),
    (garment(crops__0__detector_score=float("nan")), pb.REFUSAL_CODE_INVALID, "detector_score nan"),
    (garment(crops__0__detector_score=1.5), pb.REFUSAL_CODE_INVALID, "detector_score 1.5"),
    (garment(crops__0__detector_score=-0.1), pb.REFUSAL_CODE_INVALID, "in [0, 1]"),
    (
        garment(crops__0__encoding=pb.IMAGE_ENCODING_UNSPECIFIED),
        pb.REFUSAL_CODE_UNDECODABLE_IMAGE,
        "IMAGE_ENCODING_UNSPECIFIED is not supported",
    ),
    (garment(crops__0__encoding=42), pb.REFUSAL_CODE_UNDECODABLE_IMAGE, "42 is not supported"),
    (garment(crops__0__image=b""), pb.REFUSAL_CODE_UNDECODABLE_IMAGE, "empty (0 bytes)"),
    (garment(crops__0__image=JPEG[: len(JPEG) // 2]), pb.REFUSAL_CODE_UNDECODABLE_IMAGE, "truncated"),
    (garment(crops__0__image=b"GIF89a" + b"\0" * 50), pb.REFUSAL_CODE_UNDECODABLE_IMAGE, "crops[0].image"),
    # over the pixel limit (inspection.proto: TOO_LARGE), however small on the wire
    (
        garment(crops__0__image=_png_bomb(), crops__0__encoding=pb.IMAGE_ENCODING_PNG),
        pb.REFUSAL_CODE_TOO_LARGE,
        "crops[0].image: image declares too many pixels",
    ),
    (
        garment(crops__0__image=_png_bomb(30_000, 30_000), crops__0__encoding=pb.IMAGE_ENCODING_PNG),
        pb.REFUSAL_CODE_TOO_LARGE,
        "crops[0].image: image declares too many pixels",
    ),
    (
        garment(crops__0__image=_png_bomb(2_001, 2_000), crops__0__encoding=pb.IMAGE_ENCODING_PNG),
        pb.REFUSAL_CODE_TOO_LARGE,
        "2001x2000 = 4002000 pixels, over the limit of 4000000",
    ),
    (
        garment(crops__0__image=encode_png(np.zeros((8, 8, 3), np.uint8))),
        pb.REFUSAL_CODE_UNDECODABLE_IMAGE,
        "declared jpeg but the bytes are png",
    ),
    (
        garment(crops__0__image=b"\0" * (5 * 1024 * 1024)),
        pb.REFUSAL_CODE_TOO_LARGE,
        "over the limit of 4194304",
    ),
    (garment(operator_note="n" * 5000), pb.REFUSAL_CODE_INVALID, "operator_note is 5000 characters"),
    (
        garment(sensor_readings=lambda g: g.sensor_readings.update({f"k{i}": "v" for i in range(40)})),
        pb.REFUSAL_CODE_TOO_LARGE,
        "40 sensor readings",
    ),
    (
        garment(sensor_readings=lambda g: g.sensor_readings.update({"k": "v" * 300})),
        pb.REFUSAL_CODE_INVALID,
        "sensor_readings",
    ),
    (
        garment(edge_timings_ms=lambda g: g.edge_timings_ms.update({"detect": float("nan")})),
        pb.REFUSAL_CODE_INVALID,
        "edge_timings_ms['detect'] = nan",
    ),
    (
        garment(edge_timings_ms=lambda g: g.edge_timings_ms.update({f"s_{c}": 1.0 for c in "abcdefghi"})),
        pb.REFUSAL_CODE_INVALID,
        "9 edge timings",
    ),
]


class Stream:
    """One edge stream driven message by message."""

    def __init__(self, address: str, hello=HELLO, max_bytes: int = 64 << 20) -> None:
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", max_bytes)])
        self.outbox: queue.Queue = queue.Queue()
        self.call = pb_grpc.InspectionServiceStub(self.channel).StreamGarments(
            iter(self.outbox.get, None), timeout=60
        )
        if hello is not None:
            self.outbox.put(pb.UplinkMessage(hello=hello))
            assert next(self.call).WhichOneof("kind") == "hello"

    def send(self, message: pb.UplinkMessage) -> pb.DownlinkMessage:
        self.outbox.put(message)
        return next(self.call)

    def close(self) -> None:
        self.outbox.put(None)
        self.channel.close()


@pytest.fixture(scope="module")
def ingress(tmp_path_factory):
    server = IngressThread(tmp_path_factory.mktemp("ingress"), limits=IngressLimits()).start()
    yield server
    server.stop()


def test_bad_input_matrix_each_refused_precisely_and_the_stream_goes_on(ingress):
    assert len(CASES) >= 30
    stream = Stream(ingress.address)
    other = Stream(
        ingress.address, hello=pb.AgentHello(agent_id="edge-good", site_id="site1", line_id="line1")
    )
    try:
        for n, (bad, code, fragment) in enumerate(CASES):
            answer = stream.send(pb.UplinkMessage(garment=bad))
            assert answer.WhichOneof("kind") == "refusal", (n, fragment)
            assert answer.refusal.code == code and fragment in answer.refusal.reason, (n, answer.refusal)
            assert answer.refusal.retryable is False
            # the same stream accepts a good garment next, and another client is served meanwhile
            assert (
                stream.send(pb.UplinkMessage(garment=garment(item_id=f"good-{n}"))).WhichOneof("kind")
                == "ack"
            )
            assert (
                other.send(pb.UplinkMessage(garment=garment(item_id=f"other-{n}"))).WhichOneof("kind")
                == "ack"
            )
    finally:
        stream.close()
        other.close()
    assert ingress.audit.counts()["accepted"] == 2 * len(CASES)


def test_a_50_mb_message_ends_only_its_own_stream(ingress):
    big = Stream(ingress.address)
    other = Stream(
        ingress.address, hello=pb.AgentHello(agent_id="edge-other", site_id="site1", line_id="line1")
    )
    try:
        huge = garment(item_id="huge", crops__0__image=b"\0" * (50 * 1024 * 1024))
        with pytest.raises(grpc.RpcError) as err:
            big.send(pb.UplinkMessage(garment=huge))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in err.value.details()
        assert other.send(pb.UplinkMessage(garment=garment(item_id="after-huge"))).WhichOneof("kind") == "ack"
    finally:
        big.close()
        other.close()


@pytest.mark.parametrize(
    "first, fragment",
    [
        (pb.UplinkMessage(garment=garment()), "first message on a stream must be an AgentHello"),
        (pb.UplinkMessage(), "first message on a stream must be an AgentHello"),
        (pb.UplinkMessage(hello=pb.AgentHello(agent_id="", site_id="site1", line_id="line1")), "agent_id"),
        (
            pb.UplinkMessage(hello=pb.AgentHello(agent_id="a", site_id="Site 1", line_id="line1")),
            "hello.site_id",
        ),
        (
            pb.UplinkMessage(
                hello=pb.AgentHello(agent_id="a", site_id="site1", line_id="line1", contract_version="v9")
            ),
            "v9",
        ),
    ],
)
def test_protocol_violations_end_the_stream_with_invalid_argument(ingress, first, fragment):
    stream = Stream(ingress.address, hello=None)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stream.send(first)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in err.value.details()
    finally:
        stream.close()


@pytest.mark.parametrize("after_hello", [False, True])
def test_bytes_that_are_not_an_uplink_message_end_the_stream_with_invalid_argument(ingress, after_hello):
    hello = pb.UplinkMessage(hello=HELLO).SerializeToString()
    garbage = b"\xff\xff\xff\xff not protobuf"
    channel = grpc.insecure_channel(ingress.address)
    raw = channel.stream_stream(
        "/seamline.inspection.v1.InspectionService/StreamGarments"
    )  # bytes as they are
    try:
        with pytest.raises(grpc.RpcError) as err:
            list(raw(iter([hello, garbage] if after_hello else [garbage]), timeout=30))
    finally:
        channel.close()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    number = 2 if after_hello else 1
    assert err.value.details() == (
        f"message {number} on the stream is not an UplinkMessage: its bytes do not parse as protobuf"
    )
    stream = Stream(ingress.address)  # the server goes on serving
    try:
        answer = stream.send(pb.UplinkMessage(garment=garment(item_id=f"after-garbage-{number}")))
    finally:
        stream.close()
    assert answer.WhichOneof("kind") == "ack"


def test_second_hello_and_empty_message_mid_stream(ingress):
    for message, fragment in (
        (pb.UplinkMessage(hello=HELLO), "only be the first"),
        (pb.UplinkMessage(), "empty UplinkMessage"),
    ):
        stream = Stream(ingress.address)
        try:
            with pytest.raises(grpc.RpcError) as err:
                stream.send(message)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in err.value.details()
        finally:
            stream.close()


def test_an_id_past_validation_that_names_nothing_is_refused_by_the_store_not_retried(ingress, monkeypatch):
    # Should validation ever let such an id through, the crop store's path guard refuses it: INVALID and not
    # retryable (an edge would otherwise re-send it for ever), never "storage unavailable".
    monkeypatch.setattr("cloud.ingress.validation._names_nothing", lambda value: False)
    stream = Stream(ingress.address)
    try:
        for bad in (garment(item_id=".."), garment(item_id="guard-1", crops__0__crop_id="..")):
            refusal = stream.send(pb.UplinkMessage(garment=bad)).refusal
            assert refusal.code == pb.REFUSAL_CODE_INVALID and not refusal.retryable, refusal
            assert "bad crop key" in refusal.reason and "names no place in the store" in refusal.reason
        assert stream.send(pb.UplinkMessage(garment=garment(item_id="guard-ok"))).WhichOneof("kind") == "ack"
    finally:
        stream.close()
    assert not ingress.audit.has("..") and not ingress.audit.has("guard-1")


def test_crop_ids_that_differ_after_a_dot_are_stored_apart(ingress):
    other = encode_jpeg(np.full((40, 60, 3), 200, np.uint8))

    def second_crop(g):
        g.crops.add().CopyFrom(g.crops[0])
        g.crops[0].crop_id, g.crops[1].crop_id, g.crops[1].image = "v0.c1", "v0.c2", other

    stream = Stream(ingress.address)
    try:
        answer = stream.send(pb.UplinkMessage(garment=garment(item_id="dotted-1", crops=second_crop)))
    finally:
        stream.close()
    assert answer.WhichOneof("kind") == "ack"
    crops = {c["crop_id"]: c["uri"] for c in ingress.audit.garment("dotted-1")["crops"]}
    store = ingress.servicer.crop_store
    assert len(set(crops.values())) == 2
    assert store.get(crops["v0.c1"]) == JPEG and store.get(crops["v0.c2"]) == other


def test_duplicate_is_acked_again_not_accepted_twice(ingress):
    stream = Stream(ingress.address)
    try:
        first = stream.send(pb.UplinkMessage(garment=garment(item_id="dup-1")))
        again = stream.send(pb.UplinkMessage(garment=garment(item_id="dup-1")))
    finally:
        stream.close()
    assert first.ack.item_id == again.ack.item_id == "dup-1"
    assert not first.ack.duplicate and again.ack.duplicate


def test_the_same_garment_on_8_streams_at_once_is_acked_on_each_and_stored_once(ingress):
    # As after an edge reconnect racing its old stream, or a fleet re-sending one spool: writers of the same
    # crop files at the same moment must not take each other's temporary file ("storage unavailable").
    def many_crops(g):
        _crops(12)(g)
        for crop in g.crops:
            crop.image = JPEG

    streams = [
        Stream(
            ingress.address, hello=pb.AgentHello(agent_id=f"edge-dup{n}", site_id="site1", line_id="line1")
        )
        for n in range(8)
    ]
    try:
        for round_ in range(5):
            item_id = f"race-{round_}"
            message = pb.UplinkMessage(garment=garment(item_id=item_id, crops=many_crops))
            start = threading.Barrier(len(streams))
            answers: list = [None] * len(streams)

            def send(n, message=message, start=start, answers=answers):
                start.wait()
                answers[n] = streams[n].send(message)

            threads = [threading.Thread(target=send, args=(n,)) for n in range(len(streams))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            refusals = [a.refusal for a in answers if a.WhichOneof("kind") != "ack"]
            assert refusals == [], refusals
            assert [a.ack.item_id for a in answers] == [item_id] * len(streams)
            assert sum(not a.ack.duplicate for a in answers) == 1
            stored = ingress.audit.garment(item_id)
            assert len(stored["crops"]) == 12
            assert all(ingress.servicer.crop_store.get(c["uri"]) == JPEG for c in stored["crops"])
    finally:
        for stream in streams:
            stream.close()
    assert sorted(r.item_id for r in ingress.accepted if r.item_id.startswith("race-")) == [  # handed on once
        f"race-{n}" for n in range(5)
    ]
    assert list((ingress.root / "crops").rglob("*.tmp")) == []


def test_concurrent_streams_with_bad_input_do_not_disturb_each_other(ingress):
    errors = []

    def client(n):
        try:
            stream = Stream(
                ingress.address, hello=pb.AgentHello(agent_id=f"edge-c{n}", site_id="site1", line_id="line1")
            )
            for i in range(10):
                bad = stream.send(
                    pb.UplinkMessage(garment=garment(item_id=f"c{n}-bad-{i}", crops__0__image=b"junk"))
                )
                good = stream.send(pb.UplinkMessage(garment=garment(item_id=f"c{n}-good-{i}")))
                assert bad.WhichOneof("kind") == "refusal" and good.WhichOneof("kind") == "ack"
            stream.close()
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
