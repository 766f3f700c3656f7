//! An uploaded file, received with few thread hand-offs: kept in memory up
//! to [`MEMORY_LIMIT`], else spooled to an unlinked temp file in the system
//! temp directory (`TMPDIR`) in large writes.
//!
//! poem-openapi's `Upload` spools every upload, even a 300-byte
//! sw-description, through `tokio::fs`, which hands each 8 KiB write to a
//! blocking thread: ~31,000 hand-offs for a 250 MB module tree (a third of
//! svc-kmod's samples were the scheduler's, issue 20), and a temp file plus
//! several hand-offs for every small request. Here a small upload never
//! touches the disk, and a large one is written 1 MiB at a time.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use poem::web::Field;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromMultipartField, ParseResult, Type};
use tokio::io::AsyncReadExt;

/// Uploads up to this size stay in memory.
pub const MEMORY_LIMIT: usize = 1 << 20;

/// Bytes gathered before each write to the spool file.
const WRITE_BATCH: usize = 1 << 20;

/// An uploaded file (a multipart field with a file).
pub struct SpooledUpload {
    file_name: Option<String>,
    size: u64,
    data: Spool,
}

enum Spool {
    Memory(Vec<u8>),
    File(File),
}

impl std::fmt::Debug for SpooledUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledUpload")
            .field("file_name", &self.file_name)
            .field("size", &self.size)
            .finish()
    }
}

/// The upload's bytes, from the start: in memory or in the spool file.
pub enum UploadReader {
    /// A small upload.
    Memory(Cursor<Vec<u8>>),
    /// A spooled upload.
    File(File),
}

impl Read for UploadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UploadReader::Memory(c) => Read::read(c, buf),
            UploadReader::File(f) => Read::read(f, buf),
        }
    }
}

impl Seek for UploadReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            UploadReader::Memory(c) => c.seek(pos),
            UploadReader::File(f) => f.seek(pos),
        }
    }
}

impl SpooledUpload {
    /// The upload's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file name the client gave, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    /// A blocking reader over the whole upload.
    pub fn into_reader(self) -> UploadReader {
        match self.data {
            Spool::Memory(bytes) => UploadReader::Memory(Cursor::new(bytes)),
            Spool::File(file) => UploadReader::File(file),
        }
    }

    /// The whole upload in memory (read on a blocking thread if spooled).
    pub async fn into_vec(self) -> io::Result<Vec<u8>> {
        match self.data {
            Spool::Memory(bytes) => Ok(bytes),
            Spool::File(mut file) => tokio::task::spawn_blocking(move || {
                let mut bytes = Vec::new();
                Read::read_to_end(&mut file, &mut bytes)?;
                Ok(bytes)
            })
            .await
            .map_err(io::Error::other)?,
        }
    }

    /// Receives a file field's bytes: in memory while they fit, then
    /// spooled.
    pub(crate) async fn receive(
        file_name: Option<String>,
        mut reader: impl tokio::io::AsyncRead + Unpin,
    ) -> io::Result<Self> {
        let mut buf: Vec<u8> = Vec::new();
        let mut file: Option<File> = None;
        let mut size = 0u64;
        loop {
            if buf.capacity() - buf.len() < 64 * 1024 {
                buf.reserve(256 * 1024);
            }
            let n = reader.read_buf(&mut buf).await?;
            size += n as u64;
            let done = n == 0;
            let spill = buf.len() >= WRITE_BATCH && (file.is_some() || buf.len() > MEMORY_LIMIT);
            if spill || (done && file.is_some()) {
                let mut batch = std::mem::take(&mut buf);
                let open = file.take();
                let (spool, batch) = tokio::task::spawn_blocking(move || {
                    let mut spool = match open {
                        Some(f) => f,
                        None => tempfile::tempfile()?,
                    };
                    spool.write_all(&batch)?;
                    if done {
                        spool.rewind()?;
                    }
                    batch.clear();
                    Ok::<_, io::Error>((spool, batch))
                })
                .await
                .map_err(io::Error::other)??;
                file = Some(spool);
                buf = batch;
            }
            if done {
                break;
            }
        }
        let data = match file {
            Some(file) => Spool::File(file),
            None => Spool::Memory(buf),
        };
        Ok(Self {
            file_name,
            size,
            data,
        })
    }
}

impl Type for SpooledUpload {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_binary".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromMultipartField for SpooledUpload {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        match field {
            // The io::Error's text keeps "(os error 28)" for a full spool,
            // which friendly_errors turns into a 507.
            Some(field) => {
                let file_name = field.file_name().map(ToString::to_string);
                Self::receive(file_name, field.into_async_read())
                    .await
                    .map_err(ParseError::custom)
            }
            None => Err(ParseError::expected_input()),
        }
    }
}
