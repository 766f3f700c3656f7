//! Opening an uploaded gzip stream.

use std::io::{BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;

use super::ArchiveError;

/// Opens a gzip stream, checking the magic bytes first so "not gzip" is told
/// apart from "damaged gzip". Members are decoded back to back (`pigz` and our
/// own parallel compressor write several).
pub fn gzip_reader<R: Read>(input: R) -> Result<MultiGzDecoder<BufReader<R>>, ArchiveError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    if head.is_empty() {
        return Err(ArchiveError::Empty);
    }
    if head.len() < 2 || head[0] != 0x1f || head[1] != 0x8b {
        return Err(ArchiveError::NotGzip);
    }
    Ok(MultiGzDecoder::new(input))
}
