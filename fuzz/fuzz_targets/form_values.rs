//! The parsers of form values and of names inside uploads: machine/distro and
//! key file names, OP-TEE UUIDs and version files, Mender artifact URIs. No
//! panic, and a name that parses is a safe single path component.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = svc_optee::ta_names::parse_version(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = keystore::Selector::parse(text) {
        let s = name.to_string();
        assert!(!s.contains('/') && s != "." && s != ".." && !s.is_empty());
    }
    if let Ok(name) = keystore::KeyFileName::parse(text) {
        assert!(!name.as_str().contains('/'));
    }
    let _ = svc_optee::ta_names::parse_uuid(text);
    let _ = svc_update::artifact_uri::ArtifactUri::parse(text);
    let _ = svc_update::artifact_uri::AllowedUris::parse(text);
});
