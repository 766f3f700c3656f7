//! `file://` key stores against a real directory tree.

use std::fs;
use std::path::Path;

use keystore::{KeyFileName, KeyStore, KeyStoreError, Selector, SignType};

fn name(s: &str) -> KeyFileName {
    KeyFileName::parse(s).unwrap()
}

/// root/keys/<machine>/kmodsign/..., plus a secret *beside* the key root that
/// traversal attempts would reach.
async fn fixture() -> (tempfile::TempDir, KeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("keys");
    fs::create_dir_all(root.join("jetson/kmodsign")).unwrap();
    fs::write(root.join("jetson/kmodsign/kernel-signkey.priv"), b"PRIV").unwrap();
    fs::create_dir_all(root.join("jetson/tegrasign")).unwrap();
    fs::write(dir.path().join("outside-secret"), b"NOT A KEY").unwrap();
    let uri = format!("file://{}", root.display());
    let store = KeyStore::open(&uri).await.unwrap();
    (dir, store)
}

fn snapshot(dir: &Path) -> Vec<String> {
    let mut all = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            all.push(p.display().to_string());
        }
    }
    all.sort();
    all
}

#[tokio::test]
async fn finds_a_key_file() {
    let (_dir, store) = fixture().await;
    let key = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("kernel-signkey.priv"),
        )
        .await
        .unwrap();
    assert_eq!(key.bytes(), b"PRIV");
    assert_eq!(key.name(), "kernel-signkey.priv");
}

#[tokio::test]
async fn unknown_machine_is_no_keys_naming_machine_and_signtype() {
    let (_dir, store) = fixture().await;
    let err = store
        .fetch(
            &Selector::parse("nano").unwrap(),
            SignType::Kmod,
            &name("kernel-signkey.priv"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::NoKeys { .. }), "{err:?}");
    assert!(err.is_client_error());
    let msg = err.to_string();
    assert!(msg.contains("'nano'") && msg.contains("kmodsign"), "{msg}");
}

#[tokio::test]
async fn known_machine_without_that_signtype_is_no_keys() {
    let (_dir, store) = fixture().await;
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Mender,
            &name("private.key"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KeyStoreError::NoKeys {
                signtype: SignType::Mender,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_file_is_distinct_from_unknown_machine() {
    let (_dir, store) = fixture().await;
    let err = store
        .fetch(
            &Selector::parse("jetson").unwrap(),
            SignType::Kmod,
            &name("kernel-signkey.x509"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::MissingFile { .. }), "{err:?}");
    assert!(!err.is_client_error());
    let msg = err.to_string();
    assert!(msg.contains("jetson/kmodsign/kernel-signkey.x509"), "{msg}");
}

#[tokio::test]
async fn optional_file_absent_is_none_not_an_error() {
    let (_dir, store) = fixture().await;
    let got = store
        .fetch_optional(
            &Selector::parse("jetson").unwrap(),
            SignType::Tegra,
            &name("sbk.txt"),
        )
        .await
        .unwrap();
    assert!(got.is_none());
}

#[tokio::test]
async fn traversal_attempts_are_rejected_before_touching_the_file_system() {
    let (dir, _store) = fixture().await;
    let before = snapshot(dir.path());
    for bad in [
        "..",
        "../keys",
        "a/b",
        "%2e%2e",
        "/etc",
        "",
        ".",
        "jetson/../..",
    ] {
        let err = Selector::parse(bad).unwrap_err();
        assert!(
            matches!(err, KeyStoreError::InvalidName { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.is_client_error());
        let err = KeyFileName::parse(bad).unwrap_err();
        assert!(
            matches!(err, KeyStoreError::InvalidName { .. }),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(before, snapshot(dir.path()));
}

#[tokio::test]
async fn store_root_that_does_not_exist_is_an_operator_error() {
    let store = KeyStore::open("file:///nonexistent/digsig-keys")
        .await
        .unwrap();
    let err = store
        .fetch(&Selector::parse("m").unwrap(), SignType::Kmod, &name("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::StoreMissing { .. }), "{err:?}");
    assert!(store.check_reachable().await.is_err());
}

#[tokio::test]
async fn bad_uris_are_refused_with_what_to_set() {
    for uri in [
        "http://keys",
        "file://relative/path",
        "s3://",
        "/plain/path",
    ] {
        let err = KeyStore::open(uri).await.unwrap_err();
        assert!(
            matches!(err, KeyStoreError::BadUri { .. }),
            "{uri}: {err:?}"
        );
        assert!(
            err.to_string().contains("DIGSIGSERVER_KEYFILE_URI"),
            "{err}"
        );
    }
}
