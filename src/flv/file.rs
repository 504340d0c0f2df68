//! FLV files: the container RTMP's tag bodies travel in when they are stored (`ffmpeg -f flv out.flv`), read to
//! publish a recorded file as a live RTMP stream (tests, benchmarks, the load tool).

use bytes::Bytes;

use crate::error::Error;

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    /// `TagType`: 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// The tag's timestamp in milliseconds (24 bits and the extension byte).
    pub timestamp_ms: u32,
    /// The tag body, as an RTMP message carries it: a slice of the file.
    pub body: Bytes,
}

/// The file header's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The file says it has audio tags.
    pub has_audio: bool,
    /// The file says it has video tags.
    pub has_video: bool,
}

/// Reads an FLV file: the header (signature `FLV`, version, flags, header size), then tags each followed by its
/// 4-byte previous-tag size. Bodies are slices of `file`; a file cut inside a tag is an error.
pub fn read_file(file: &Bytes) -> Result<(FileHeader, Vec<FileTag>), Error> {
    let bad = |what: &str| Error::MalformedFlv(format!("FLV file: {what}"));
    let header = file.get(..9).ok_or_else(|| bad("shorter than its header"))?;
    if &header[..3] != b"FLV" {
        return Err(bad("no FLV signature"));
    }
    let flags = FileHeader { has_audio: header[4] & 4 != 0, has_video: header[4] & 1 != 0 };
    let header_size = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
    // The first previous-tag size (0) follows the header.
    let mut at = header_size.checked_add(4).ok_or_else(|| bad("header size"))?;
    let mut tags = Vec::new();
    while at < file.len() {
        let h = file.get(at..at + 11).ok_or_else(|| bad("cut inside a tag header"))?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let end = at + 11 + size;
        if end > file.len() {
            return Err(bad("cut inside a tag body"));
        }
        tags.push(FileTag { kind: h[0] & 0x1f, timestamp_ms, body: file.slice(at + 11..end) });
        at = end + 4;
    }
    Ok((flags, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_and_refuses_cut_files() {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        // A video tag of 3 bytes at 0x01020304 ms, then its previous-tag size.
        f.extend_from_slice(&[9, 0, 0, 3, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0, 0, 0, 14]);
        let (header, tags) = read_file(&Bytes::from(f.clone())).unwrap();
        assert_eq!(header, FileHeader { has_audio: true, has_video: true });
        assert_eq!(
            tags,
            [FileTag { kind: 9, timestamp_ms: 0x0102_0304, body: Bytes::from_static(&[0xaa, 0xbb, 0xcc]) }]
        );
        for cut in [3, 15, 20, f.len() - 5] {
            assert!(read_file(&Bytes::from(f[..cut].to_vec())).is_err(), "cut at {cut}");
        }
        assert!(read_file(&Bytes::from_static(b"MP4\x01\x05\x00\x00\x00\x09")).is_err());
    }
}
