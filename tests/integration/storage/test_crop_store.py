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
