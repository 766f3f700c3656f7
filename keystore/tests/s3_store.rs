//! `s3://` key stores against a real S3-compatible server (moto) over HTTP.

use std::time::{Duration, Instant};

use keystore::testing::{closed_port, moto, moto_with_auth};
use keystore::{KeyFileName, KeyStore, KeyStoreError, S3Options, Selector, SignType};

fn name(s: &str) -> KeyFileName {
    KeyFileName::parse(s).unwrap()
}

/// A bucket with keys for one machine under a prefix; the bucket name is unique
/// per test so tests can run in parallel against one server.
async fn bucket_with_keys(bucket: &str) -> KeyStore {
    let server = moto();
    let client = server.client();
    client.create_bucket().bucket(bucket).send().await.unwrap();
    client
        .put_object()
        .bucket(bucket)
        .key("fleet/jetson/kmodsign/kernel-signkey.priv")
        .body(b"PRIVATE".to_vec().into())
        .send()
        .await
        .unwrap();
    KeyStore::open_with(&format!("s3://{bucket}/fleet/"), &server.options())
        .await
        .unwrap()
}

#[tokio::test]
async fn finds_a_key_object() {
    let store = bucket_with_keys("found").await;
    let key = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("kernel-signkey.priv"),
        )
        .await
        .unwrap();
    assert_eq!(key.bytes(), b"PRIVATE");
    store.check_reachable().await.unwrap();
}

#[tokio::test]
async fn missing_object_for_known_machine_is_missing_file() {
    let store = bucket_with_keys("missing-object").await;
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("kernel-signkey.x509"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::MissingFile { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("s3://missing-object/fleet/jetson/kmodsign/kernel-signkey.x509"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_machine_is_no_keys() {
    let store = bucket_with_keys("unknown-machine").await;
    let err = store
        .fetch(
            &Selector::parse("nano").unwrap(),
            SignType::Kmod,
            &name("kernel-signkey.priv"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::NoKeys { .. }), "{err:?}");
    assert!(err.to_string().contains("'nano'"), "{err}");
}

#[tokio::test]
async fn missing_bucket_is_store_missing() {
    let store = KeyStore::open_with("s3://no-such-bucket/keys", &moto().options())
        .await
        .unwrap();
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("k"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::StoreMissing { .. }), "{err:?}");
    let err = store.check_reachable().await.unwrap_err();
    assert!(matches!(err, KeyStoreError::StoreMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn bad_credentials_are_access_denied() {
    let store = KeyStore::open_with("s3://any-bucket/keys", &moto_with_auth().options())
        .await
        .unwrap();
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("k"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::AccessDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("credentials"), "{err}");
}

#[tokio::test]
async fn endpoint_down_is_unreachable_quickly() {
    let options = S3Options {
        endpoint_url: Some(format!("http://127.0.0.1:{}", closed_port())),
        ..moto().options()
    };
    let store = KeyStore::open_with("s3://keys", &options).await.unwrap();
    let started = Instant::now();
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("k"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn endpoint_that_never_answers_times_out_within_the_bound() {
    // Accepts connections and never replies: the worst case for a hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let mut held = vec![];
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let options = S3Options {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        operation_timeout: Duration::from_secs(2),
        ..moto().options()
    };
    let store = KeyStore::open_with("s3://keys", &options).await.unwrap();
    let started = Instant::now();
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("k"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}
