"""The local crop store on a real directory: keys that name no place, crop ids with dots."""

import pytest

from cloud.storage.crop_store import CropKeyError, LocalCropStore

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("key", ["", "/", "site1/line1/d/../v0-c0", "site1/line1/d/./v0-c0", "..", "a/."])
def test_a_key_that_names_no_place_is_a_crop_key_error(tmp_path, key):
    store = LocalCropStore(tmp_path / "crops")
    with pytest.raises(CropKeyError, match="names no place in the store"):
        store.put(key, b"x", "jpeg")
    assert list((tmp_path / "crops").rglob("*")) == []


def test_crop_ids_with_dots_keep_their_own_files(tmp_path):
    store = LocalCropStore(tmp_path / "crops")
    uris = [
        store.put(f"site1/line1/d/item.1/{crop_id}", crop_id.encode(), "jpeg")
        for crop_id in ("v0.c1", "v0.c2", "v0")
    ]
    assert len(set(uris)) == 3
    assert [store.get(uri) for uri in uris] == [b"v0.c1", b"v0.c2", b"v0"]
    assert sorted(p.name for p in (tmp_path / "crops").rglob("*.jpg")) == ["v0.c1.jpg", "v0.c2.jpg", "v0.jpg"]
