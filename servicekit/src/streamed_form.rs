//! Multipart forms whose file is signed while it is still arriving.
//!
//! poem-openapi's derived forms read the whole body before the handler
//! runs: a 250 MB module tree was received and spooled to a temp file
//! (~0.45 s here) before signing began, and then read back (issue 20). A
//! [`StreamedForm`] reads the text fields that come before the file, then
//! hands the handler the file as it arrives ([`Artifact::Live`]): signing
//! overlaps the upload and nothing is spooled.
//!
//! The clients send their text fields first (the bbclasses' curl calls are
//! `-F machine=.. -F hashalg=.. -F artifact=@..`). A form in any other order
//! is still accepted as before: its file is spooled ([`Artifact::Spooled`])
//! and the rest of the form read first. Which fields must come before the
//! file for it to be read live is each form's choice
//! ([`StreamedForm::BEFORE_FILE`]); a text field that could have changed how
//! the file was signed and comes after a live file is refused (400), never
//! ignored.
//!
//! The operation's OpenAPI schema is the derived form's
//! ([`StreamedForm::Documented`]), so the API reference and Swagger UI do not
//! change; field errors read as the derived form's do (see
//! [`crate::friendly_errors`]).

use std::collections::HashMap;
use std::io;

use bytes::Bytes;
use futures_util::TryStreamExt;
use poem::http::header::CONTENT_TYPE;
use poem::{Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseMultipartError};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromParameter;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use tokio::sync::mpsc;

use crate::form_fields::MAX_TEXT_FIELD_BYTES;
use crate::upload::SpooledUpload;

/// The text fields of a multipart form with one file field, read by
/// [`Streamed`].
pub trait StreamedForm: Sized + Send {
    /// The derived form with the same fields: its schema documents the
    /// operation.
    type Documented: Payload;
    /// The text fields, by name. Unknown fields are ignored, as the derived
    /// forms ignore them.
    const TEXT_FIELDS: &'static [&'static str];
    /// The text fields that must all have arrived for the file to be read
    /// as it arrives; the others, if sent, must come before the file then.
    const BEFORE_FILE: &'static [&'static str];
    /// The file field's name.
    const FILE_FIELD: &'static str;
    /// The fields, checked.
    fn parse(fields: &TextFields) -> Result<Self, ParseMultipartError>;
}

/// The text fields of a form, by name.
#[derive(Debug, Default)]
pub struct TextFields(HashMap<&'static str, String>);

impl TextFields {
    /// Field `name` parsed, or the derived form's error for it.
    pub fn required<T: ParseFromParameter>(&self, name: &str) -> Result<T, ParseMultipartError> {
        let text = self.0.get(name).ok_or_else(|| ParseMultipartError {
            reason: format!("field `{name}` is required"),
        })?;
        T::parse_from_parameter(text).map_err(|e| field_error(name, e.into_message()))
    }

    /// Field `name` parsed, or `default()` when the form has none.
    pub fn optional<T: ParseFromParameter>(
        &self,
        name: &str,
        default: fn() -> T,
    ) -> Result<T, ParseMultipartError> {
        match self.0.contains_key(name) {
            true => self.required(name),
            false => Ok(default()),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn field_error(name: &str, reason: impl std::fmt::Display) -> ParseMultipartError {
    ParseMultipartError {
        reason: format!("failed to parse field `{name}`: {reason}"),
    }
}

fn repeated(name: &str) -> ParseMultipartError {
    field_error(name, "repeated field")
}

fn not_multipart(e: multer::Error) -> ParseMultipartError {
    ParseMultipartError {
        reason: format!("the body is not a complete multipart/form-data form: {e}"),
    }
}

/// A form read by [`StreamedForm`]'s rules; the handler's parameter.
pub struct Streamed<F> {
    /// The text fields.
    pub fields: F,
    /// The file.
    pub artifact: Artifact,
}

impl<'a, F: StreamedForm> ApiExtractor<'a> for Streamed<F> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        F::Documented::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: F::Documented::CONTENT_TYPE,
                schema: F::Documented::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .ok_or(ContentTypeError::ExpectContentType)?;
        if !F::Documented::check_content_type(content_type) {
            return Err(ContentTypeError::NotSupported {
                content_type: content_type.to_string(),
            }
            .into());
        }
        let boundary = multer::parse_boundary(content_type).map_err(not_multipart)?;
        // hyper's chunks as they come (poem's own multipart re-chunks the
        // body into 4 KiB pieces), paced.
        let body = Paced {
            inner: Box::pin(body.take()?.into_bytes_stream()),
            taken: 0,
        };
        let form = multer::Multipart::new(body, boundary);
        Ok(read_form::<F>(form).await?)
    }
}

/// Bytes multer may take from the body in one go. It copies whatever the
/// body has ready into its own buffer before it hands any of it on: on
/// loopback, a fast client kept the body ready for tens of MiB at a time,
/// and the chunks waiting for a slower signer took 100 MiB.
const PACE_BYTES: usize = 256 * 1024;

/// The request body, seen as not ready after each [`PACE_BYTES`] (and
/// woken at once), so multer's buffer, and each chunk it hands on, stay
/// about that size.
struct Paced<S> {
    inner: std::pin::Pin<Box<S>>,
    taken: usize,
}

impl<S: futures_util::Stream<Item = io::Result<Bytes>>> futures_util::Stream for Paced<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.taken >= PACE_BYTES {
            self.taken = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.taken += chunk.len(),
            Poll::Pending => self.taken = 0,
            _ => {}
        }
        polled
    }
}

async fn read_form<F: StreamedForm>(
    mut form: multer::Multipart<'static>,
) -> Result<Streamed<F>, ParseMultipartError> {
    let mut texts = TextFields::default();
    let mut spooled = None;
    while let Some(field) = form.next_field().await.map_err(not_multipart)? {
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        if name == F::FILE_FIELD {
            if spooled.is_some() {
                return Err(repeated(&name));
            }
            if F::BEFORE_FILE.iter().all(|n| texts.has(n)) {
                let live = LiveFile {
                    field,
                    rest: form,
                    names: F::TEXT_FIELDS,
                    seen: texts.0.keys().copied().collect(),
                    file_field: F::FILE_FIELD,
                };
                // A refusal here leaves the body to the server's drain
                // (`crate::drain`), which reads what the handler did not.
                let fields = F::parse(&texts)?;
                return Ok(Streamed {
                    fields,
                    artifact: Artifact::Live(Box::new(live)),
                });
            }
            spooled = Some(
                SpooledUpload::receive(
                    field.file_name().map(str::to_string),
                    tokio_util::io::StreamReader::new(field.map_err(io::Error::other)),
                )
                .await
                // The io::Error's text keeps "(os error 28)" for a full
                // spool, which friendly_errors turns into a 507.
                .map_err(|e| field_error(&name, e))?,
            );
            continue;
        }
        let Some(known) = F::TEXT_FIELDS.iter().find(|n| **n == name) else {
            continue; // unknown: skipped, as the derived forms do
        };
        if texts.has(known) {
            return Err(repeated(known));
        }
        let text = read_text(field)
            .await
            .map_err(|reason| field_error(known, reason))?;
        texts.0.insert(known, text);
    }
    let artifact = spooled.ok_or_else(|| ParseMultipartError {
        reason: format!("field `{}` is required", F::FILE_FIELD),
    })?;
    Ok(Streamed {
        fields: F::parse(&texts)?,
        artifact: Artifact::Spooled(artifact),
    })
}

async fn read_text(mut field: multer::Field<'static>) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| format!("reading it failed: {e}"))?
    {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(format!("it is longer than {MAX_TEXT_FIELD_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())
}

/// A form's file.
pub enum Artifact {
    /// Still arriving: read it with [`Artifact::into_reader`] and its
    /// [`LiveFeed`]. Dropped unread, the server drains it
    /// ([`crate::drain`]).
    Live(Box<LiveFile>),
    /// Received before the form's text fields, and spooled.
    Spooled(SpooledUpload),
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Artifact::Live(_) => f.write_str("Artifact::Live"),
            Artifact::Spooled(s) => f.debug_tuple("Artifact::Spooled").field(s).finish(),
        }
    }
}

/// A file field being received, and the rest of its form.
pub struct LiveFile {
    field: multer::Field<'static>,
    rest: multer::Multipart<'static>,
    names: &'static [&'static str],
    /// The text fields that came before the file.
    seen: Vec<&'static str>,
    file_field: &'static str,
}

/// Chunks in flight between the connection and the blocking reader: each
/// is at most about [`PACE_BYTES`]. Two kept the signer fed as well as 16
/// did on loopback (the signer reads through its own 256 KiB buffer).
const LIVE_CHUNKS: usize = 2;

impl Artifact {
    /// A blocking reader of the upload, and, for a live one, the feed that
    /// must be driven (awaited) while the reader is read on another thread.
    pub fn into_reader(self) -> (ArtifactSource, Option<LiveFeed>) {
        match self {
            Artifact::Spooled(upload) => (ArtifactSource::Spooled(upload.into_reader()), None),
            Artifact::Live(live) => {
                let (tx, rx) = mpsc::channel(LIVE_CHUNKS);
                let reader = LiveReader {
                    rx,
                    current: Bytes::new(),
                    ended: false,
                    failed: None,
                };
                (
                    ArtifactSource::Live(reader),
                    Some(LiveFeed { live: *live, tx }),
                )
            }
        }
    }
}

/// Drives a live upload into its [`LiveReader`].
pub struct LiveFeed {
    live: LiveFile,
    tx: mpsc::Sender<Piece>,
}

impl LiveFeed {
    /// Sends the file's chunks to the reader as they arrive, then reads the
    /// rest of the form: a repeated field after the file is refused as the
    /// derived forms refuse it; unknown fields are skipped. Once the reader
    /// is gone (its signer failed or finished early), the rest of the file
    /// is read and dropped, so the client always gets the reply.
    pub async fn run(self) -> Result<(), crate::ServiceError> {
        self.live.feed(self.tx).await
    }
}

impl LiveFile {
    /// Its errors are the handler's (a `ServiceError`, worded as
    /// `crate::friendly_errors` words the derived forms' errors).
    async fn feed(self, tx: mpsc::Sender<Piece>) -> Result<(), crate::ServiceError> {
        use crate::ServiceError::BadRequest;
        let broken = |e: multer::Error| BadRequest(not_multipart(e).reason);
        let LiveFile {
            mut field,
            mut rest,
            names,
            seen,
            file_field,
        } = self;
        let mut reader_gone = false;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if !reader_gone && tx.send(Piece::Data(chunk)).await.is_err() {
                        reader_gone = true;
                    }
                }
                Ok(None) => {
                    let _ = tx.send(Piece::End).await;
                    break;
                }
                Err(e) => {
                    let _ = tx.send(Piece::Failed(e.to_string())).await;
                    return Err(broken(e));
                }
            }
        }
        drop(field);
        while let Some(field) = rest.next_field().await.map_err(broken)? {
            match field.name() {
                Some(name) if name == file_field || seen.contains(&name) => {
                    return Err(BadRequest(format!("field `{name}`: repeated field")));
                }
                Some(name) if names.contains(&name) => {
                    return Err(BadRequest(format!(
                        "field `{name}` came after `{file_field}`, which was signed as it arrived \
                         without it; send `{name}` before `{file_field}`"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

enum Piece {
    Data(Bytes),
    End,
    Failed(String),
}

/// A blocking reader of a live upload, fed by its [`LiveFeed`]. The upload
/// must end with its closing boundary: a feed that stops without it (the
/// client went away, or the request was cancelled) is an error, never a
/// short file, and stays one: every read after it fails again, so nothing
/// (a retrying reader, a drain that hashes what is left) mistakes the end
/// of what arrived for the end of the file.
pub struct LiveReader {
    rx: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
    failed: Option<(io::ErrorKind, String)>,
}

impl io::Read for LiveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if let Some((kind, why)) = &self.failed {
                return Err(io::Error::new(*kind, why.clone()));
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(chunk)) => self.current = chunk,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(why)) => {
                    self.failed = Some((
                        io::ErrorKind::Other,
                        format!("receiving the upload failed: {why}"),
                    ));
                }
                None => {
                    self.failed = Some((
                        io::ErrorKind::UnexpectedEof,
                        "the upload stopped before its end".into(),
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The upload's bytes from the start, for a blocking signer: spooled, or
/// live.
pub enum ArtifactSource {
    /// Spooled (or small, in memory).
    Spooled(crate::upload::UploadReader),
    /// Arriving.
    Live(LiveReader),
}

impl io::Read for ArtifactSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ArtifactSource::Spooled(r) => r.read(buf),
            ArtifactSource::Live(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::Stream;

    #[derive(Debug)]
    struct Fields {
        machine: String,
        note: String,
    }

    #[derive(Debug, poem_openapi::Multipart)]
    #[allow(dead_code)]
    struct Documented {
        machine: String,
        note: Option<String>,
        artifact: crate::upload::SpooledUpload,
    }

    impl StreamedForm for Fields {
        type Documented = Documented;
        const TEXT_FIELDS: &'static [&'static str] = &["machine", "note"];
        const BEFORE_FILE: &'static [&'static str] = &["machine", "note"];
        const FILE_FIELD: &'static str = "artifact";
        fn parse(fields: &TextFields) -> Result<Self, ParseMultipartError> {
            Ok(Self {
                machine: fields.required("machine")?,
                note: fields.optional("note", || "none".to_string())?,
            })
        }
    }

    const BOUNDARY: &str = "b0undary";

    /// A form of `parts` (name, value, is a file), closed unless `cut`.
    fn form(parts: &[(&str, &[u8], bool)], cut: bool) -> multer::Multipart<'static> {
        let mut body = Vec::new();
        for (name, value, file) in parts {
            let file = if *file { "; filename=\"a.bin\"" } else { "" };
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        if !cut {
            body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        }
        // Delivered in 1000-byte chunks, as a network would.
        let chunks: Vec<io::Result<Bytes>> = body
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        multer::Multipart::new(futures_util::stream::iter(chunks), BOUNDARY)
    }

    /// Reads the form's file to its end the way `sign_to_tarball` does.
    async fn read_file(
        artifact: Artifact,
    ) -> (io::Result<Vec<u8>>, Result<(), crate::ServiceError>) {
        let (mut source, feed) = artifact.into_reader();
        let reading = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            source.read_to_end(&mut all).map(|_| all)
        });
        let fed = match feed {
            Some(feed) => feed.run().await,
            None => Ok(()),
        };
        (reading.await.unwrap(), fed)
    }

    #[tokio::test]
    async fn the_file_is_read_live_when_the_fields_come_first_and_spooled_otherwise() {
        let file: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let live = read_form::<Fields>(form(
            &[
                ("machine", b"m1", false),
                ("note", b"n", false),
                ("artifact", &file, true),
            ],
            false,
        ))
        .await
        .unwrap();
        assert!(matches!(live.artifact, Artifact::Live(_)));
        assert_eq!(
            (live.fields.machine.as_str(), live.fields.note.as_str()),
            ("m1", "n")
        );
        let (bytes, fed) = read_file(live.artifact).await;
        assert_eq!(bytes.unwrap(), file);
        assert!(fed.is_ok());

        // An optional field after the file could change the signing: spooled.
        for parts in [
            vec![
                ("machine", &b"m1"[..], false),
                ("artifact", &file[..], true),
                ("note", b"n", false),
            ],
            vec![
                ("artifact", &file[..], true),
                ("note", b"n", false),
                ("machine", b"m1", false),
            ],
        ] {
            let spooled = read_form::<Fields>(form(&parts, false)).await.unwrap();
            assert!(matches!(spooled.artifact, Artifact::Spooled(_)));
            assert_eq!(spooled.fields.note, "n");
            let (bytes, fed) = read_file(spooled.artifact).await;
            assert_eq!(bytes.unwrap(), file);
            assert!(fed.is_ok());
        }
    }

    #[tokio::test]
    async fn form_mistakes_read_as_the_derived_forms_do() {
        let reason = |r: Result<Streamed<Fields>, ParseMultipartError>| r.err().unwrap().reason;
        let f = b"x";
        assert_eq!(
            reason(read_form::<Fields>(form(&[("machine", b"m", false)], false)).await),
            "field `artifact` is required"
        );
        assert_eq!(
            reason(
                read_form::<Fields>(form(&[("note", b"n", false), ("artifact", f, true)], false))
                    .await
            ),
            "field `machine` is required"
        );
        assert_eq!(
            reason(
                read_form::<Fields>(form(
                    &[("machine", b"a", false), ("machine", b"b", false)],
                    false
                ))
                .await
            ),
            "failed to parse field `machine`: repeated field"
        );
        let long = vec![b'a'; MAX_TEXT_FIELD_BYTES + 1];
        assert!(
            reason(read_form::<Fields>(form(&[("machine", &long, false)], false)).await)
                .contains("longer than")
        );
        // After a live file, a repeated field is refused once the file is read.
        let live = read_form::<Fields>(form(
            &[
                ("machine", b"m", false),
                ("note", b"n", false),
                ("artifact", f, true),
                ("note", b"again", false),
                ("other", b"ignored", false),
            ],
            false,
        ))
        .await
        .unwrap();
        let (bytes, fed) = read_file(live.artifact).await;
        assert_eq!(bytes.unwrap(), f);
        assert!(fed
            .unwrap_err()
            .to_string()
            .contains("field `note`: repeated field"));
    }

    #[tokio::test]
    async fn a_live_upload_that_stops_short_is_an_error_never_a_short_file() {
        let file = vec![7u8; 10_000];
        let live = read_form::<Fields>(form(
            &[
                ("machine", b"m", false),
                ("note", b"n", false),
                ("artifact", &file, true),
            ],
            true,
        ))
        .await
        .unwrap();
        let (mut source, feed) = live.artifact.into_reader();
        let reading = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let first = source.read_to_end(&mut all).is_err();
            // And again: still an error, not an end of file.
            let again = source.read(&mut [0u8; 16]).is_err();
            (first, again, all.len())
        });
        let fed = feed.unwrap().run().await;
        let (first, again, got) = reading.await.unwrap();
        assert!(first && again, "a short upload read as complete");
        assert!(got <= 10_000);
        assert!(fed.is_err());
    }

    #[test]
    fn a_fast_body_is_handed_on_in_batches() {
        let chunks = (0..64).map(|_| Ok(Bytes::from(vec![0u8; 64 * 1024])));
        let mut paced = Paced {
            inner: Box::pin(futures_util::stream::iter(chunks)),
            taken: 0,
        };
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (mut run, mut longest, mut total) = (0, 0, 0);
        loop {
            match Pin::new(&mut paced).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    run += chunk.len();
                    total += chunk.len();
                }
                Poll::Pending => {
                    longest = usize::max(longest, run);
                    run = 0;
                }
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(e))) => panic!("{e}"),
            }
        }
        assert_eq!(total, 64 * 64 * 1024);
        assert_eq!(usize::max(longest, run), PACE_BYTES);
    }
}
