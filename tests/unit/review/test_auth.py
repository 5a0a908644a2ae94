from cloud.review.auth import hash_password, token_hash, verify_password


def test_passwords_are_salted_argon2id_hashes():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("correct horse", a) == (True, False)
    assert verify_password("correct horse", b) == (True, False)
    assert verify_password("wrong horse", a) == (False, False)
    assert verify_password("correct horse", "garbage")[0] is False
    assert verify_password("x", "md5$1$2$3$4$5")[0] is False


def test_a_hash_with_weaker_parameters_matches_and_asks_to_be_replaced():
    import argon2

    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse")
    assert verify_password("correct horse", weaker) == (True, True)
    assert verify_password("wrong horse", weaker)[0] is False


def test_session_tokens_are_stored_hashed():
    assert token_hash("abc") != "abc" and len(token_hash("abc")) == 64


def test_the_database_never_holds_a_session_token_or_a_password(tmp_path):
    import sqlalchemy as sa

    from cloud.review.auth import Reviewers
    from cloud.storage.audit import AuditStore

    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'a.db'}")
    reviewers = Reviewers(store.engine)
    reviewers.add("alice", "a-long-password")
    token, session = reviewers.open_session("alice")
    dump = "\n".join(store.engine.raw_connection().iterdump())
    assert token not in dump and "a-long-password" not in dump
    assert token_hash(token) in dump and reviewers.session(token) == session
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM review_sessions")).scalar() == 1
