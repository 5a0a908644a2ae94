"""The gRPC contract's messages carry what the edge and cloud need, and round-trip."""

from google.protobuf import timestamp_pb2

from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc


def _garment() -> pb.Garment:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return pb.Garment(
        item_id="site1-line1-000042",
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
                box=pb.Box(x1=10, y1=20, x2=110, y2=90),
                crop_box=pb.Box(x1=0, y1=0, x2=130, y2=110),
                detector_score=0.81,
                detector_label="defect",
                image=b"\xff\xd8jpeg",
                encoding=pb.IMAGE_ENCODING_JPEG,
            )
        ],
        detector_model_version="rtdetr-tiny@1",
        sensor_readings={"roughness": "0.42"},
    )


def test_garment_round_trips():
    garment = _garment()
    again = pb.Garment.FromString(garment.SerializeToString())
    assert again == garment
    assert not again.HasField("operator_note")  # optional: absent is distinguishable from ""
    again.operator_note = ""
    assert again.HasField("operator_note")


def test_uplink_and_downlink_are_oneofs():
    up = pb.UplinkMessage(garment=_garment())
    assert up.WhichOneof("kind") == "garment"
    down = pb.DownlinkMessage(
        refusal=pb.GarmentRefusal(
            item_id="x", code=pb.REFUSAL_CODE_INVALID, reason="crops[0].box", retryable=False
        )
    )
    assert down.WhichOneof("kind") == "refusal"
    assert pb.DownlinkMessage.FromString(down.SerializeToString()).refusal.reason == "crops[0].box"


def test_a_drop_record_is_an_uplink_kind_of_its_own():
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    dropped = pb.GarmentDropped(
        item_id="site1-line1-000043",
        site_id="site1",
        line_id="line1",
        station_id="st1",
        capture_time=now,
        dropped_at=now,
        reason=pb.DROP_REASON_DETECTOR_BEHIND,
        detail="detector behind",
        line_action=pb.LINE_ACTION_DIVERT_REVIEW,
    )
    up = pb.UplinkMessage.FromString(pb.UplinkMessage(dropped=dropped).SerializeToString())
    assert up.WhichOneof("kind") == "dropped" and up.dropped == dropped
    assert not up.dropped.HasField("deadline")  # optional: the edge may not know it
    # additive: the fields an edge already sends keep their numbers
    kinds = pb.UplinkMessage.DESCRIPTOR.fields_by_name
    assert (kinds["hello"].number, kinds["garment"].number, kinds["dropped"].number) == (1, 2, 3)


def test_service_is_bidirectional_streaming():
    method = pb.DESCRIPTOR.services_by_name["InspectionService"].methods_by_name["StreamGarments"]
    assert method.client_streaming and method.server_streaming
    assert hasattr(pb_grpc, "InspectionServiceStub") and hasattr(
        pb_grpc, "add_InspectionServiceServicer_to_server"
    )


def test_package_is_versioned():
    assert pb.DESCRIPTOR.package == "seamline.inspection.v1"
