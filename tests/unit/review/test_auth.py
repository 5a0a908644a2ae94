from cloud.review.auth import hash_password, token_hash, verify_password


def test_passwords_are_salted_scrypt_hashes():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("correct horse", a) and verify_password("correct horse", b)
    assert not verify_password("wrong horse", a)
    assert not verify_password("correct horse", "garbage") and not verify_password("x", "md5$1$2$3$4$5")


def test_session_tokens_are_stored_hashed():
    assert token_hash("abc") != "abc" and len(token_hash("abc")) == 64
